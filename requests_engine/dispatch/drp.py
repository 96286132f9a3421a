"""The Data Rights Protocol (DRP) transport: we are the authorised agent, the controller runs the DRP server.

One interface (`DrpClient`: exercise, status, revoke), two protocol versions, chosen by
`Controller.drp_version`; `Controller.drp_endpoint` is the server's base URL.

DRP 0.5, as Ethyca Fides implements it (the DRP server we can run and test against; shared/STACK.md):
  * ``POST {endpoint}/api/v1/drp/exercise`` with ``{"meta": {"version": "0.5"}, "regime": "ccpa",
    "exercise": [action], "identity": <JWT>}``. The identity is an HS256 JWT signed with the secret the
    controller gave us (its ``drp_jwt_secret``), carrying ``name``, ``email`` and ``phone_number``. It has
    **no** ``aud`` claim: Fides decodes it without naming an audience, and PyJWT then rejects any token
    that has one ("Invalid audience").
  * ``GET {endpoint}/api/v1/drp/status?request_id=…`` and ``POST {endpoint}/api/v1/drp/revoke`` with
    ``{"request_id", "reason"}``, both with an OAuth bearer token from ``{endpoint}/api/v1/oauth/token``
    (client credentials). Fides only revokes requests still ``pending`` (DRP ``open``).
  * Fides never calls ``status_callback``, so we never send one and poll instead (`drp_requests_poll`).

DRP 1.0 (the 0.9.4 text renumbered; we implement the authorised-agent side):
  * Every POST and DELETE body is the JSON document with its 64-byte Ed25519 signature prepended,
    base64-encoded, sent as ``text/plain`` (spec 3.07.1). Our signing key is ``settings.DRP_SIGNING_KEY``;
    its public half (`agent_verify_key`) is what the DRP service directory lists for ``DRP_AGENT_ID``.
  * Pairwise key set-up (2.05): ``POST {endpoint}/v1/agent/{agent-id}`` with signed ``{agent-id,
    business-id, issued-at, expires-at, drp.version}`` returns ``{"agent-id", "token"}``; the token is the
    bearer for every later call to that server. ``GET {endpoint}/v1/agent/{agent-id}`` ("agent information",
    2.06) tells whether a token is still good. A cached token that is refused (401/403) is dropped and the
    set-up done once more.
  * ``POST {endpoint}/v1/data-rights-request`` (signed: the envelope above, ``agent-request-id`` = our
    reference, ``drp.version``, ``exercise``, ``regime`` and the identity claims), ``GET …/{request_id}``,
    and ``DELETE …/{request_id}`` (signed ``{"reason"}``).

Rights → DRP actions: access → ``access``; portability → ``access`` (the CCPA right to know, which DRP
encodes, includes a copy "in a portable and readily usable format"); erasure → ``deletion``. Objection,
rectification and restriction have no DRP action: `supports_right` says so, and sending one fails delivery
with that reason, so the coordinator can send it by email instead.

Regime: DRP knows only ``ccpa`` (DRP 0.5 and 1.0 §3.01; Fides' ``DrpRegime`` has nothing else), and no UK
GDPR regime. We send the closest statutory regime it supports, ``ccpa`` (``settings.DRP_REGIME``; an empty
value omits the field, which DRP reads as "voluntary processing"). The legal basis that binds the controller
is still UK GDPR, stated in the mandate and letters; a denial for ``outside_jurisdiction`` is recorded as a
refusal on ground "other" that the coordinator can contest.

DRP statuses → our lifecycle (`plan_transition`; applied straight after sending and on every poll, under the
request's row lock, and only from the states listed, so a repeated poll changes nothing):

================================ ============================================== ===========================
DRP status / reason              our request                                    service
================================ ============================================== ===========================
open                             stays sent: the PIP has it, the controller     (none)
                                 may not have acted yet (spec 3.03 note 1)
in_progress                      sent → acknowledged                            request_acknowledge
in_progress /                    sent, acknowledged, extended → info_requested  request_ask_for_information
need_user_verification (or       (identity; the question carries the details
needs_user_verification)         and the verification URL)
in_progress, after we recorded   info_requested → acknowledged or extended      request_give_information
need_user_verification           (the member has verified)
fulfilled                        any answerable state → fulfilled               request_fulfil
denied / insuf_verification      answerable → refused, identity_not_verified    request_refuse
denied / no_match                answerable → fulfilled, no personal data held  request_confirm_no_data
                                 (an answer, not a refusal: Art 15(1))
denied / too_many_requests       answerable → refused, manifestly_excessive     request_refuse
                                 (Art 12(5))
denied / suspected_fraud,        answerable → refused, other; the DRP reason    request_refuse
claim_not_covered,               and processing details are the reasons
outside_jurisdiction, other, …
revoked                          unchanged, unless we revoked it (then it is    (none)
                                 withdrawn already): withdrawing is the
                                 member's act, not the controller's
expired (Fides: its own error)   unchanged: the statutory clock runs on and     (none)
                                 the deadline sweep marks it overdue
================================ ============================================== ===========================

Errors: a 4xx answer other than 408 and 429 (and, for DRP 1.0, other than an error body saying
``"fatal": false``) is permanent: sending moves the request to ``failed_delivery`` with the reason. A 5xx,
408, 429, a timeout or a refused connection raises `DrpTemporaryError`, leaving the request as it was, for
the calling task's retry policy. A controller whose DRP set-up is incomplete (no endpoint, version or
credentials) is a permanent failure too, with a reason the coordinator can act on.

Settings: ``DRP_CREDENTIALS`` (controller slug → ``{"jwt_secret", "client_id", "client_secret", "token",
"business_id", "regime"}``, each optional as the version needs), ``DRP_AGENT_ID`` and ``DRP_SIGNING_KEY``
(DRP 1.0), ``DRP_REGIME`` (default ``"ccpa"``), ``DRP_TIMEOUT_SECONDS`` (default 10) and
``DRP_CLAIM_SECONDS`` (default 600: how long a sender's claim on a request holds before another may retry it).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from allauth.account.models import EmailAddress
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from communities.models import Identifier, Right
from core.audit import Actor
from requests_engine import services
from requests_engine.exceptions import RequestEngineError
from requests_engine.models import (
    ANSWERABLE_STATES,
    OPEN_STATES,
    Batch,
    Controller,
    DataRightsRequest,
    InformationKind,
    RefusalGround,
    RequestState,
    Transport,
)
from requests_engine.tasks import send_drp_request

logger = logging.getLogger(__name__)

S = RequestState
# Our own acts (sending, revoking) are the system's; the status changes a controller reports are its own.
SENDER = Actor.system("drp")

DRP_ACTIONS: dict[str, str] = {Right.ACCESS: "access", Right.PORTABILITY: "access", Right.ERASURE: "deletion"}
DENIAL_GROUNDS: dict[str, str] = {
    "insuf_verification": RefusalGround.IDENTITY_NOT_VERIFIED,
    "too_many_requests": RefusalGround.MANIFESTLY_EXCESSIVE,
}
NEEDS_VERIFICATION = frozenset({"need_user_verification", "needs_user_verification"})
KNOWN_STATUSES = frozenset({"open", "in_progress", "fulfilled", "denied", "revoked", "expired"})
# drp_status while a sender holds the request (the claim); never a DRP status.
SENDING = "sending"
MAX_RESPONSE_BYTES = 1_000_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class DrpError(Exception):
    """A DRP call did not succeed."""


class DrpTemporaryError(DrpError):
    """Worth trying again later: the server is unreachable, slow or failing (5xx), or asks us to slow down."""


class DrpPermanentError(DrpError):
    """Trying again cannot help: the server refused the call (4xx), or the DRP set-up is incomplete."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DrpStatus:
    """A DRP Exercise Status object (DRP 1.0 §3.03; Fides' PrivacyRequestDRPStatusResponse)."""

    request_id: str
    status: str
    reason: str = ""
    processing_details: str = ""
    user_verification_url: str = ""
    results_url: str = ""
    received_at: str = ""
    expected_by: str = ""

    @classmethod
    def from_answer(cls, data: Any, *, what: str) -> DrpStatus:
        if not isinstance(data, dict) or not data.get("request_id") or not data.get("status"):
            raise DrpPermanentError(f"{what}: the answer is not a DRP status (no request_id or status).")
        return cls(**{name: str(data.get(name) or "") for name in cls.__dataclass_fields__})

    @property
    def label(self) -> str:
        """What we keep in DataRightsRequest.drp_status: the status, and its reason when that is a DRP reason
        code (Fides echoes free text there, e.g. the reason we gave for a revocation)."""
        coded = re.fullmatch(r"[a-z_]{1,30}", self.reason)
        return (f"{self.status}/{self.reason}" if coded else self.status)[:40]


# -- HTTP ------------------------------------------------------------------------------------------------


def _timeout() -> float:
    return float(getattr(settings, "DRP_TIMEOUT_SECONDS", 10))


def _error_detail(raw: bytes) -> tuple[str, bool | None]:
    """The message of an error body: DRP's {"code", "message", "fatal"} or FastAPI's {"detail"}."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:300], None
    if not isinstance(data, dict):
        return str(data)[:300], None
    detail = data.get("message") or data.get("detail") or ""
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": "..."}]
        detail = "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    fatal = data.get("fatal")
    return str(detail)[:300], fatal if isinstance(fatal, bool) else None


def _http(
    method: str,
    url: str,
    *,
    what: str,
    json_body: Any = None,
    text_body: bytes | None = None,
    form: dict[str, str] | None = None,
    token: str = "",
) -> Any:
    """One HTTP call: its parsed JSON answer, or DrpTemporaryError / DrpPermanentError saying what failed."""
    headers = {"Accept": "application/json", "User-Agent": "datacommunity-drp/1"}
    data: bytes | None = None
    if json_body is not None:
        data = json.dumps(json_body, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    elif text_body is not None:
        data = text_body
        headers["Content-Type"] = "text/plain"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as response:
            raw = response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        status = exc.code
        detail, fatal = _error_detail(exc.read(MAX_RESPONSE_BYTES) if exc.fp else b"")
        message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
        if status >= 500 or status in (408, 429) or fatal is False:
            raise DrpTemporaryError(message) from None
        raise DrpPermanentError(message, status=status) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DrpTemporaryError(f"{what}: {url} did not answer ({reason}).") from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise DrpPermanentError(f"{what}: the answer is not JSON.") from None


def _api_base(endpoint: str, suffix: str) -> str:
    """The endpoint's API root; the endpoint may be given with or without the version prefix."""
    parts = urllib.parse.urlsplit(endpoint)
    # Identities travel in these calls: plain HTTP only on this machine (tests, a local Fides).
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)):
        raise DrpPermanentError(f"The DRP endpoint {endpoint!r} must be an https:// URL.")
    base = endpoint.rstrip("/")
    return base if base.endswith(suffix) else base + suffix


def _cache_key(*parts: str) -> str:
    return "drp:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# -- identity --------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def identity_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (RFC 7519) of the identity claims, signed with the controller's DRP secret. No `aud`."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def _e164(phone: str) -> str:
    """A phone number in E.164, as DRP asks (§3.04); UK national numbers get +44. Empty if it cannot be."""
    digits = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0"):
        digits = "+44" + digits[1:]
    return digits if re.fullmatch(r"\+[1-9]\d{7,14}", digits) else ""


def identity_claims(request: DataRightsRequest) -> dict[str, Any]:
    """The schema.org/Person claims DRP carries (§3.04): the member's name, and the email address and phone
    number they gave for this controller (or for every controller). Nothing else is disclosed."""
    identifiers = (
        Identifier.objects.filter(member_id=request.member_id)
        .filter(Q(controller_id=request.controller_id) | Q(controller__isnull=True))
        .filter(kind__in=[Identifier.Kind.EMAIL, Identifier.Kind.PHONE, Identifier.Kind.NAME])
    )
    chosen: dict[str, str] = {}
    # The controller's own identifiers win over the general ones.
    for identifier in sorted(identifiers, key=lambda i: (i.controller_id is not None, i.pk)):
        chosen[identifier.kind] = identifier.value.strip()
    claims: dict[str, Any] = {"name": chosen.get(Identifier.Kind.NAME) or request.member.full_name}
    if email := chosen.get(Identifier.Kind.EMAIL):
        claims["email"] = email
        claims["email_verified"] = _email_verified(request, email)
    if phone := chosen.get(Identifier.Kind.PHONE):
        if number := _e164(phone):
            claims["phone_number"] = number
        else:
            logger.warning("drp: request %s: phone identifier is not a phone number; left out", request.pk)
    if "email" not in claims and "phone_number" not in claims:
        raise DrpPermanentError(
            f"The member has given no email address or phone number for {request.controller.name}: "
            "DRP identifies people by one of them."
        )
    return claims


def _email_verified(request: DataRightsRequest, email: str) -> bool:
    """True when the address is one the member proved they control (allauth's verified addresses)."""

    return EmailAddress.objects.filter(
        user_id=request.member.user_id, email__iexact=email, verified=True
    ).exists()


# -- the two protocol versions ---------------------------------------------------------------------------


class DrpClient(Protocol):
    version: str

    def exercise(self, *, action: str, identity: dict[str, Any], reference: str) -> DrpStatus: ...

    def status(self, *, drp_request_id: str) -> DrpStatus: ...

    def revoke(self, *, drp_request_id: str, reason: str) -> DrpStatus: ...


def _credentials(controller: Controller) -> dict[str, str]:
    return dict(getattr(settings, "DRP_CREDENTIALS", {}).get(controller.slug) or {})


def _regime(credentials: dict[str, str]) -> str:
    return credentials.get("regime", getattr(settings, "DRP_REGIME", "ccpa"))


class Drp05Client:
    """DRP 0.5 as Ethyca Fides serves it under /api/v1/drp/."""

    version = "0.5"

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.base = _api_base(controller.drp_endpoint, "/api/v1")
        self.credentials = _credentials(controller)

    def exercise(self, *, action: str, identity: dict[str, Any], reference: str) -> DrpStatus:
        secret = self.credentials.get("jwt_secret")
        if not secret:
            raise DrpPermanentError(
                f"No DRP identity secret (jwt_secret) is set up for {self.controller.name}."
            )
        # exp keeps a copied identity token from being replayed for long (RFC 7519 §4.1.4).
        claims = {**identity, "exp": int(timezone.now().timestamp()) + 15 * 60}
        body: dict[str, Any] = {
            "meta": {"version": "0.5"},
            "exercise": [action],
            "identity": identity_jwt(claims, secret),
        }
        if regime := _regime(self.credentials):
            body["regime"] = regime
        what = f"DRP exercise at {self.controller.name}"
        # Fides takes exercise calls without a token (the signed identity is the check); we send one when we
        # have credentials, for servers that want it.
        optional = bool(self.credentials.get("token") or self.credentials.get("client_id"))
        answer = self._call("POST", "/drp/exercise", what=what, json_body=body, authenticated=optional)
        return DrpStatus.from_answer(answer, what=what)

    def status(self, *, drp_request_id: str) -> DrpStatus:
        what = f"DRP status at {self.controller.name}"
        query = urllib.parse.urlencode({"request_id": drp_request_id})
        return DrpStatus.from_answer(self._call("GET", f"/drp/status?{query}", what=what), what=what)

    def revoke(self, *, drp_request_id: str, reason: str) -> DrpStatus:
        what = f"DRP revoke at {self.controller.name}"
        body = {"request_id": drp_request_id, "reason": reason}
        return DrpStatus.from_answer(self._call("POST", "/drp/revoke", what=what, json_body=body), what=what)

    def _call(self, method: str, path: str, *, what: str, authenticated: bool = True, **kwargs: Any) -> Any:
        if not authenticated:
            return _http(method, self.base + path, what=what, **kwargs)
        token, cached = self._token()
        try:
            return _http(method, self.base + path, what=what, token=token, **kwargs)
        except DrpPermanentError as exc:
            if exc.status != 401 or not cached:
                raise
        # A cached token the server no longer takes (expired, server restarted): fetch a new one, once.
        token, _ = self._token(fresh=True)
        return _http(method, self.base + path, what=what, token=token, **kwargs)

    def _token(self, *, fresh: bool = False) -> tuple[str, bool]:
        """The bearer token and whether it came from the cache."""
        if static := self.credentials.get("token"):
            return static, False
        client_id, secret = self.credentials.get("client_id"), self.credentials.get("client_secret")
        if not client_id or not secret:
            raise DrpPermanentError(
                f"No DRP OAuth client (client_id, client_secret) is set up for {self.controller.name}."
            )
        key = _cache_key("oauth", self.base, client_id, secret)
        if not fresh and (token := cache.get(key)):
            return token, True
        what = f"DRP OAuth token from {self.controller.name}"
        answer = _http(
            "POST",
            self.base + "/oauth/token",
            what=what,
            form={"client_id": client_id, "client_secret": secret},
        )
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise DrpPermanentError(f"{what}: the answer has no access_token.")
        # Fides' auth endpoint is rate-limited (10 a minute by default): keep the token while it is valid.
        lifetime = int(answer.get("expires_in") or 3600)
        cache.set(key, token, timeout=max(lifetime - 60, 30))
        return token, False


def _signing_key() -> Ed25519PrivateKey:
    raw = getattr(settings, "DRP_SIGNING_KEY", "")
    if not raw:
        raise DrpPermanentError("DRP 1.0 needs our agent's Ed25519 signing key (settings.DRP_SIGNING_KEY).")
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error):
        raise DrpPermanentError(
            "settings.DRP_SIGNING_KEY is not a base64 Ed25519 private key (32 bytes)."
        ) from None


def agent_verify_key() -> str:
    """Our agent's public verify key, base64, as the DRP service directory lists it (spec 3.05.1)."""
    return base64.b64encode(_signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Drp10Client:
    """DRP 1.0: Ed25519-signed requests and a pairwise bearer token per server."""

    version = "1.0"
    # Spec 2.01: "we recommend no more than 10 minute time windows".
    VALIDITY = datetime.timedelta(minutes=5)

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.base = _api_base(controller.drp_endpoint, "/v1")
        self.credentials = _credentials(controller)
        self.agent_id: str = getattr(settings, "DRP_AGENT_ID", "")
        if not self.agent_id:
            raise DrpPermanentError(
                "DRP 1.0 needs our agent id in the DRP directory (settings.DRP_AGENT_ID)."
            )
        # Directory ids match [A-Z_]+ (spec 3.05).
        self.business_id = self.credentials.get("business_id") or controller.slug.upper().replace("-", "_")

    def sign(self, document: dict[str, Any]) -> bytes:
        """Spec 3.07.1: the signature prepended to the JSON ("combined mode"), base64-encoded."""
        message = json.dumps(document, separators=(",", ":")).encode()
        return base64.b64encode(_signing_key().sign(message) + message)

    def _envelope(self) -> dict[str, str]:
        now = timezone.now()
        return {
            "agent-id": self.agent_id,
            "business-id": self.business_id,
            "issued-at": _iso(now),
            "expires-at": _iso(now + self.VALIDITY),
        }

    def register(self) -> str:
        """Pairwise key set-up (spec 2.05): a signed request for this server's bearer token."""
        what = f"DRP pairwise key set-up with {self.controller.name}"
        agent = urllib.parse.quote(self.agent_id, safe="")
        answer = _http(
            "POST",
            f"{self.base}/agent/{agent}",
            what=what,
            text_body=self.sign({**self._envelope(), "drp.version": "1.0"}),
        )
        token = answer.get("token") if isinstance(answer, dict) else None
        if not token or answer.get("agent-id") != self.agent_id:
            raise DrpPermanentError(f"{what}: the answer has no token for agent {self.agent_id}.")
        cache.set(self._token_key(), token, timeout=None)
        return token

    def token_is_valid(self) -> bool:
        """The "agent information" endpoint (spec 2.06): whether the server still takes our token."""
        token: str = cache.get(self._token_key()) or self.credentials.get("token") or ""
        if not token:
            return False
        agent = urllib.parse.quote(self.agent_id, safe="")
        try:
            _http("GET", f"{self.base}/agent/{agent}", what="DRP agent information", token=token)
        except DrpPermanentError:
            return False
        return True

    def exercise(self, *, action: str, identity: dict[str, Any], reference: str) -> DrpStatus:
        what = f"DRP exercise at {self.controller.name}"

        def body() -> bytes:  # signed afresh for each attempt: its validity window starts now
            claims: dict[str, Any] = {
                **self._envelope(),
                "agent-request-id": reference,
                "drp.version": "1.0",
                "exercise": action,
                **identity,
            }
            if regime := _regime(self.credentials):
                claims["regime"] = regime
            return self.sign(claims)

        answer = self._call("POST", "/data-rights-request", what=what, body=body)
        return DrpStatus.from_answer(answer, what=what)

    def status(self, *, drp_request_id: str) -> DrpStatus:
        what = f"DRP status at {self.controller.name}"
        path = "/data-rights-request/" + urllib.parse.quote(drp_request_id, safe="")
        return DrpStatus.from_answer(self._call("GET", path, what=what), what=what)

    def revoke(self, *, drp_request_id: str, reason: str) -> DrpStatus:
        what = f"DRP revoke at {self.controller.name}"
        path = "/data-rights-request/" + urllib.parse.quote(drp_request_id, safe="")
        answer = self._call("DELETE", path, what=what, body=lambda: self.sign({"reason": reason}))
        return DrpStatus.from_answer(answer, what=what)

    def _call(self, method: str, path: str, *, what: str, body: Callable[[], bytes] | None = None) -> Any:
        token: str = cache.get(self._token_key()) or self.credentials.get("token") or ""
        fresh = not token
        if fresh:
            token = self.register()
        try:
            return _http(method, self.base + path, what=what, token=token, text_body=body() if body else None)
        except DrpPermanentError as exc:
            # Spec 2.01-2.06: an unknown or mismatched token gets 403. Set up a new one, once.
            if exc.status not in (401, 403) or fresh:
                raise
        cache.delete(self._token_key())
        token = self.register()
        return _http(method, self.base + path, what=what, token=token, text_body=body() if body else None)

    def _token_key(self) -> str:
        return _cache_key("pairwise", self.base, self.agent_id, self.business_id)


def client_for(controller: Controller) -> DrpClient:
    """The client for the controller's DRP version; DrpPermanentError when its DRP set-up is incomplete."""
    if not controller.drp_endpoint:
        raise DrpPermanentError(f"{controller.name} has no DRP endpoint.")
    if controller.drp_version == "0.5":
        return Drp05Client(controller)
    if controller.drp_version == "1.0":
        return Drp10Client(controller)
    raise DrpPermanentError(f"{controller.name} has no DRP version (0.5 or 1.0) set.")


def supports_right(right: str) -> bool:
    """Whether DRP can carry this right; the others go by email or letter."""
    return right in DRP_ACTIONS


# -- statuses → our lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One service call that brings our request in line with the controller's DRP status."""

    service: Callable[..., DataRightsRequest]
    arguments: dict[str, Any]


def plan_transition(*, state: str, previous: str, status: DrpStatus) -> Step | None:
    """The step the module docstring's table gives for a request in `state` whose last recorded DRP status
    was `previous` (DataRightsRequest.drp_status) and whose status is now `status`; None if nothing moves."""
    today = timezone.localdate()
    details = status.processing_details.strip()
    if status.status == "in_progress" and status.reason in NEEDS_VERIFICATION:
        if state not in (S.SENT, S.ACKNOWLEDGED, S.EXTENDED):
            return None
        question = "The controller needs to verify the member's identity before it acts"
        question += f": {details}" if details else "."
        if status.user_verification_url:
            question += f" Verification page: {status.user_verification_url}"
        return Step(
            services.request_ask_for_information,
            {"kind": InformationKind.IDENTITY, "question": question, "asked_on": today},
        )
    if status.status == "in_progress":
        if state == S.SENT:
            return Step(
                services.request_acknowledge, {"note": details or "Acknowledged through DRP (in_progress)."}
            )
        if state == S.INFO_REQUESTED and previous.split("/", 1)[-1] in NEEDS_VERIFICATION:
            return Step(
                services.request_give_information,
                {
                    "received_on": today,
                    "answer": "The controller's DRP endpoint reports the verification done.",
                },
            )
        return None
    if status.status == "fulfilled":
        if state not in ANSWERABLE_STATES:
            return None
        note = "Fulfilled according to the controller's DRP endpoint."
        if status.results_url:
            note += f" Results: {status.results_url}"
        return Step(services.request_fulfil, {"note": f"{note} {details}".strip()})
    if status.status == "denied":
        if state not in ANSWERABLE_STATES:
            return None
        if status.reason == "no_match":  # nothing held under the member's identifiers: an answer
            statement = "The controller's DRP endpoint reports no data matching the member's identifiers."
            return Step(services.request_confirm_no_data, {"searches": f"{statement} {details}".strip()})
        ground = DENIAL_GROUNDS.get(status.reason, RefusalGround.OTHER)
        reasons = f"Denied through the controller's DRP endpoint (reason: {status.reason or 'none given'})"
        reasons += f": {details}" if details else "."
        return Step(services.request_refuse, {"ground": ground, "reasons": reasons})
    if status.status not in KNOWN_STATUSES:
        logger.warning("drp: unknown DRP status %r (reason %r): nothing done", status.status, status.reason)
    return None


def _controller_actor(request: DataRightsRequest) -> Actor:
    return Actor(Actor.CONTROLLER, str(request.controller_id))


def _bookkeep(request_id: int, **fields: str) -> None:
    """The transport's own columns (DRP id, last DRP status, the sender's claim): not lifecycle state, so
    written directly. updated_at is set too: the claim's age is read from it."""
    DataRightsRequest.objects.filter(pk=request_id).update(**fields, updated_at=timezone.now())


def _apply_status(request_id: int, status: DrpStatus) -> DataRightsRequest:
    """Record the DRP status and take the step it calls for, under the request's row lock."""
    with transaction.atomic():
        request = DataRightsRequest.objects.select_for_update().get(pk=request_id)
        step = plan_transition(state=request.state, previous=request.drp_status, status=status)
        if step:
            request = step.service(request_id=request_id, actor=_controller_actor(request), **step.arguments)
        _bookkeep(request_id, drp_status=status.label)
    return request


# -- the public verbs ------------------------------------------------------------------------------------


def _load(request_id: int) -> DataRightsRequest:
    return DataRightsRequest.objects.select_related("controller", "member").get(pk=request_id)


def _claim(request_id: int) -> bool:
    """Only one sender at a time: a conditional UPDATE takes a queued, unsent request. A claim older than
    DRP_CLAIM_SECONDS belongs to a sender that died, and may be taken over."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=getattr(settings, "DRP_CLAIM_SECONDS", 600))
    return bool(
        DataRightsRequest.objects.filter(pk=request_id, state=S.QUEUED, drp_request_id="")
        .filter(Q(drp_status="") | Q(drp_status=SENDING, updated_at__lt=stale))
        .update(drp_status=SENDING, updated_at=now)
    )


def _action_for(request: DataRightsRequest) -> str:
    if not supports_right(request.right):
        raise DrpPermanentError(
            f"DRP has no action for a {request.get_right_display()} request: send it by email or letter."
        )
    return DRP_ACTIONS[request.right]


def drp_request_send(*, request_id: int) -> None:
    """Exercise the request at the controller's DRP endpoint.

    Accepted: the request is dispatched (received today, Europe/London; the DRP request id is its message
    id) and the status that came back is applied. Refused for good: it moves to failed_delivery with the
    reason. Temporarily failing: DrpTemporaryError, the request left queued for a retry. A request that is
    not queued, already has a DRP id, or is held by another sender is left alone, so repeating is safe; only
    a sender that dies between the server's answer and our commit can cause a second exercise, which DRP 1.0
    servers can recognise by its agent-request-id (our reference).
    """
    request = _load(request_id)
    if request.state != S.QUEUED or request.drp_request_id or not _claim(request_id):
        return
    try:
        client = client_for(request.controller)
        action = _action_for(request)
        identity = identity_claims(request)
        status = client.exercise(action=action, identity=identity, reference=request.reference)
    except DrpPermanentError as exc:
        _fail_delivery(request_id, str(exc))
        return
    except BaseException:
        _bookkeep(request_id, drp_status="")  # let the retry (or a fixed deployment) claim it again
        raise
    _record_sent(request_id, status)


def drp_sending_give_up(*, request_id: int, error: str) -> None:
    """The sending task's last retry failed too: the request moves to failed_delivery with the error, so the
    coordinator sees it and can send it again. A request sent or claimed meanwhile is left alone."""
    if _claim(request_id):
        _fail_delivery(request_id, error)


def _fail_delivery(request_id: int, error: str) -> None:
    try:
        with transaction.atomic():
            services.request_fail_delivery(request_id=request_id, error=error, actor=SENDER)
            _bookkeep(request_id, drp_status="")
    except RequestEngineError as exc:  # changed meanwhile, e.g. withdrawn: nothing to fail
        _bookkeep(request_id, drp_status="")
        logger.warning(
            "drp: request %s: could not record the failed delivery (%s): %s", request_id, exc, error
        )


def _record_sent(request_id: int, status: DrpStatus) -> None:
    try:
        with transaction.atomic():
            services.request_dispatch(
                request_id=request_id,
                received_on=timezone.localdate(),
                actor=SENDER,
                channel="drp",
                message_id=status.request_id,
            )
            _bookkeep(request_id, drp_request_id=status.request_id[:100], drp_status=status.label)
    except RequestEngineError as exc:
        # It changed while the call was in flight (e.g. withdrawn): keep the DRP id so it can be revoked.
        _bookkeep(request_id, drp_request_id=status.request_id[:100], drp_status=status.label)
        logger.warning("drp: request %s was exercised but could not be marked sent: %s", request_id, exc)
        if DataRightsRequest.objects.filter(pk=request_id, state=S.WITHDRAWN).exists():
            try:
                drp_request_revoke(request_id=request_id, reason="The member withdrew the request.")
            except DrpError as revoke_error:
                logger.warning("drp: request %s: revoking it failed: %s", request_id, revoke_error)
        return
    _apply_status(request_id, status)


def drp_status_poll(*, request_id: int) -> str:
    """Ask the controller's DRP endpoint for the request's status, apply it (see the table above) and return
    the DRP status. DrpTemporaryError / DrpPermanentError when the endpoint cannot say."""
    request = _load(request_id)
    if not request.drp_request_id:
        raise DrpPermanentError(f"Request {request.reference} was not sent by DRP.")
    status = client_for(request.controller).status(drp_request_id=request.drp_request_id)
    if status.request_id != request.drp_request_id:
        raise DrpPermanentError(
            f"DRP status at {request.controller.name}: asked about {request.drp_request_id}, "
            f"answered about {status.request_id}."
        )
    _apply_status(request_id, status)
    return status.status


def drp_request_revoke(*, request_id: int, reason: str = "") -> None:
    """Tell the controller's DRP endpoint the request is withdrawn (DRP revoke). If our request is still
    open, it is withdrawn too once the endpoint has taken the revocation. A request never sent by DRP, or
    already revoked, is left alone. Errors as for `drp_status_poll`; a server that will not revoke (Fides only
    revokes requests it has not started) gives DrpPermanentError."""
    request = _load(request_id)
    if not request.drp_request_id or request.drp_status.startswith("revoked"):
        return
    reason = reason or "The member withdrew the request."
    status = client_for(request.controller).revoke(drp_request_id=request.drp_request_id, reason=reason)
    with transaction.atomic():
        request = DataRightsRequest.objects.select_for_update().get(pk=request_id)
        if request.state in OPEN_STATES:
            services.request_withdraw(request_id=request_id, actor=SENDER, reason=reason)
        _bookkeep(request_id, drp_status=status.label)


def drp_requests_poll(*, chunk: int = 200) -> dict[str, int]:
    """Poll every DRP request that still waits for the controller (the beat job). Chunks of `chunk` rows,
    keyset-ordered by id, so memory stays flat and a long run never holds a lock; one failing endpoint is
    logged and the run goes on. Safe to run twice, or twice at once: each status is applied under the
    request's row lock, and only moves a request from the states the table lists."""
    counts: Counter[str] = Counter()
    last_id = 0
    while True:
        ids = list(
            DataRightsRequest.objects.filter(state__in=ANSWERABLE_STATES, pk__gt=last_id)
            .exclude(drp_request_id="")
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk]
        )
        if not ids:
            return dict(counts)
        for request_id in ids:
            try:
                drp_status_poll(request_id=request_id)
                counts["polled"] += 1
            except DrpTemporaryError as exc:
                counts["unreachable"] += 1
                logger.warning("drp: polling request %s: %s", request_id, exc)
            except (DrpPermanentError, RequestEngineError) as exc:
                counts["errors"] += 1
                logger.error("drp: polling request %s: %s", request_id, exc)
        last_id = ids[-1]


def drp_requests_queue(*, campaign_id: int, batch_id: int | None = None) -> int:
    """After the launch commits, queue one DRP call per queued request of the campaign's DRP batches (or of
    one batch, when a held one is released), spaced at each controller's send rate so it is not flooded.
    Requests for rights DRP cannot carry (objection, rectification, restriction) stay queued, visible in the
    admin, to be sent another way."""

    queued = 0
    drp_batches = Batch.objects.filter(campaign_id=campaign_id, transport=Transport.DRP)
    if batch_id is not None:
        drp_batches = drp_batches.filter(pk=batch_id)
    for batch in drp_batches.select_related("controller"):
        rate = batch.controller.send_rate_per_minute or 0
        interval = 60.0 / rate if rate else 0.0
        ids = list(batch.requests.filter(state=RequestState.QUEUED).order_by("pk").values_list("pk", "right"))
        for position, (request_id, _right) in enumerate((pk, r) for pk, r in ids if supports_right(r)):
            transaction.on_commit(partial(_queue_send, request_id, position * interval), robust=True)
            queued += 1
    return queued


def _queue_send(request_id: int, countdown: float) -> None:

    send_drp_request.apply_async(args=(request_id,), countdown=countdown)
