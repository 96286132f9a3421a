"""Errors to Sentry when SENTRY_DSN is set, with personal data left out: no request bodies, cookies, user
details or local variables are sent, and fields that would name a member are scrubbed from what is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentry_sdk.types import Event

# Words in our field names that carry personal data (members' names, addresses, identifiers, answers).
PERSONAL_FIELDS = [
    "email",
    "name",
    "address",
    "phone",
    "identifier",
    "answer",
    "question",
    "note",
    "reasons",
    "searches",
    "situation",
    "recipients_told",
    "signed",
    "user_agent",
]


def start(dsn: str, *, environment: str) -> None:
    import sentry_sdk
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,  # no user ids, IP addresses, cookies
        include_local_variables=False,  # a frame's variables may hold a member's data
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *PERSONAL_FIELDS], recursive=True),
        before_send=_before_send,
        traces_sample_rate=0,
    )


def _scrubbed(value: Any) -> Any:
    """Every value under a key naming personal data replaced, at any depth (the SDK's scrubber leaves
    contexts alone)."""
    if isinstance(value, dict):
        return {
            key: "[Filtered]"
            if any(word in str(key).lower() for word in PERSONAL_FIELDS)
            else _scrubbed(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value


def _before_send(event: Event, hint: dict[str, Any]) -> Event:
    """Contexts and extras scrubbed; links carry tokens and search terms: keep the path, drop the query."""
    for part in ("contexts", "extra", "tags"):
        if part in event:
            event[part] = _scrubbed(event[part])
    request: Any = event.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    return event
