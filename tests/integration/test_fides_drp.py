"""Our DRP 0.5 client against a real Ethyca Fides 2.78.2 on 127.0.0.1:8181 (shared/tools/fides).

The session fixture reuses a Fides that already answers, or starts one with `.ci/fides.sh up` (about two and a
half minutes the first time on a machine, while it installs; seconds after) and stops it again at the end.
Where Fides cannot be started (not root, the tools missing, no route to PyPI…) the tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from communities.models import Identifier, Right
from core.audit import Actor
from requests_engine import services
from requests_engine.dispatch import drp
from requests_engine.dispatch.drp import DrpPermanentError
from requests_engine.models import Controller, DataRightsRequest, RequestEvent
from tests.factories import make_request

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / ".ci" / "fides.sh"
FIDES = "http://127.0.0.1:8181"
SYSTEM = Actor.system()
# Our state once Fides reports each DRP status (the table in requests_engine/dispatch/drp.py).
EXPECTED_STATE = {
    "open": "sent",
    "in_progress": "acknowledged",
    "fulfilled": "fulfilled",
    "denied": "refused",
    "expired": "sent",
    "revoked": "sent",
}


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{FIDES}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _fides_config() -> dict:
    """The config the tools start Fides with: its DRP secret and OAuth root client."""
    for tools in (
        os.environ.get("FIDES_TOOLS", ""),
        ROOT.parent / "shared/tools/fides",
        "/work/shared/tools/fides",
    ):
        path = Path(tools) / "fides.toml"
        if tools and path.is_file():
            return tomllib.loads(path.read_text())
    pytest.skip("shared/tools/fides/fides.toml not found (FIDES_TOOLS, ../shared, /work/shared)")


@pytest.fixture(scope="session")
def fides() -> Iterator[dict]:
    config = _fides_config()
    if _healthy():
        yield config
        return
    if os.geteuid() != 0:
        pytest.skip(
            f"Fides is not answering on {FIDES}, and starting it needs root: run .ci/fides.sh up as root"
        )
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", str(HELPER), "up"],
            capture_output=True,
            text=True,
            timeout=1500,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", str(HELPER), "down"], capture_output=True, timeout=120)
        pytest.skip("Fides did not come up within 25 minutes (.ci/fides.sh up timed out)")
    if result.returncode != 0 or not _healthy():
        subprocess.run(["bash", str(HELPER), "down"], capture_output=True, timeout=120)
        why = " | ".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        pytest.skip(f"Fides could not be started (.ci/fides.sh up exited {result.returncode}): {why}")
    print(f"\nFides came up in {time.monotonic() - started:.0f} s")
    try:
        yield config
    finally:
        subprocess.run(["bash", str(HELPER), "down"], capture_output=True, timeout=120)


@pytest.fixture
def fides_controller(fides, controller, settings) -> Controller:
    security = fides["security"]
    settings.DRP_CREDENTIALS = {
        controller.slug: {
            "jwt_secret": security["drp_jwt_secret"],
            "client_id": security["oauth_root_client_id"],
            "client_secret": security["oauth_root_client_secret"],
        }
    }
    settings.DRP_TIMEOUT_SECONDS = 30
    Controller.objects.filter(pk=controller.pk).update(transport="drp", drp_endpoint=FIDES, drp_version="0.5")
    controller.refresh_from_db()
    return controller


def queued(member, controller, *, right=Right.ACCESS) -> DataRightsRequest:
    # A fresh address each time: Fides keeps every request it was ever sent. Not .test: Fides validates
    # addresses with email-validator, which refuses special-use domains (HTTP 422); example.com passes.
    email = f"member-{uuid.uuid4().hex[:10]}@example.com"
    Identifier.objects.create(member=member, controller=controller, kind="email", value=email)
    request = make_request(member, controller, right=right)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    return request


def fresh(request: DataRightsRequest) -> DataRightsRequest:
    return DataRightsRequest.objects.get(pk=request.pk)


def poll_until_settled(request: DataRightsRequest, *, within: float = 120) -> list[str]:
    """Poll as the beat job does until Fides leaves `open` (it runs requests at once) or time runs out."""
    seen = [fresh(request).drp_status]
    deadline = time.monotonic() + within
    while seen[-1] == "open" and time.monotonic() < deadline:
        time.sleep(1)
        seen.append(drp.drp_status_poll(request_id=request.pk))
    return seen


def fides_token(fides: dict) -> str:
    security = fides["security"]
    form = (
        f"client_id={security['oauth_root_client_id']}&client_secret={security['oauth_root_client_secret']}"
    )
    request = urllib.request.Request(f"{FIDES}/api/v1/oauth/token", data=form.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def fides_api(method: str, path: str, token: str, body: object) -> dict:
    request = urllib.request.Request(
        f"{FIDES}/api/v1{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_fides_takes_an_access_request_and_our_request_follows_its_status(fides_controller, member):
    request = queued(member, fides_controller)

    drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "sent"
    assert request.received_on == timezone.localdate()
    assert request.drp_request_id.startswith("pri_")  # Fides' privacy request id
    assert request.message_id == request.drp_request_id
    assert request.drp_status in EXPECTED_STATE
    assert RequestEvent.objects.get(request=request, kind="request.dispatched").payload["channel"] == "drp"

    seen = poll_until_settled(request)

    request = fresh(request)
    assert seen[-1] in EXPECTED_STATE, seen
    assert request.state == EXPECTED_STATE[seen[-1]], seen
    if "in_progress" in seen:
        assert "request.acknowledged" in RequestEvent.objects.filter(request=request).values_list(
            "kind", flat=True
        )
    # Polling again changes nothing.
    events = RequestEvent.objects.filter(request=request).count()
    drp.drp_status_poll(request_id=request.pk)
    assert RequestEvent.objects.filter(request=request).count() == events


def test_fides_refuses_an_identity_signed_with_another_secret(fides_controller, member, settings):
    credentials = settings.DRP_CREDENTIALS[fides_controller.slug]
    settings.DRP_CREDENTIALS = {fides_controller.slug: {**credentials, "jwt_secret": "not-fides-secret"}}
    request = queued(member, fides_controller)

    drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "failed_delivery"
    assert request.delivery_error == (
        "DRP exercise at Acme Ltd: HTTP 422: DRP privacy request could not be exercised"
    )


def test_fides_will_not_revoke_a_request_it_has_started(fides_controller, member):
    request = queued(member, fides_controller)
    drp.drp_request_send(request_id=request.pk)
    poll_until_settled(request)
    state = fresh(request).state

    with pytest.raises(DrpPermanentError, match="HTTP 400: Invalid revoke request"):
        drp.drp_request_revoke(request_id=request.pk, reason="The member revoked their mandate.")

    assert fresh(request).state == state


def test_fides_revokes_a_pending_request_and_ours_is_withdrawn(fides, fides_controller, member):
    """Fides queues a DRP exercise at once, so a request it has not started can only be made through its own
    privacy-request API, with manual approval switched on (shared/tools/README.md). Such a request stands in
    for one of ours still waiting at the controller: its id is recorded on our sent request as a DRP id."""
    token = fides_token(fides)
    fides_api("PATCH", "/config", token, {"execution": {"require_manual_request_approval": True}})
    try:
        email = f"member-{uuid.uuid4().hex[:10]}@example.com"
        created = fides_api(
            "POST",
            "/privacy-request",
            token,
            [{"identity": {"email": email}, "policy_key": "default_erasure_policy"}],
        )
    finally:
        fides_api("PATCH", "/config", token, {"execution": {"require_manual_request_approval": False}})
    pending_id = created["succeeded"][0]["id"]
    request = make_request(member, fides_controller, right=Right.ERASURE)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    services.request_dispatch(
        request_id=request.pk, received_on=timezone.localdate(), actor=SYSTEM, channel="drp"
    )
    DataRightsRequest.objects.filter(pk=request.pk).update(drp_request_id=pending_id, drp_status="open")
    assert drp.drp_status_poll(request_id=request.pk) == "open"

    drp.drp_request_revoke(request_id=request.pk, reason="The member revoked their mandate.")

    request = fresh(request)
    assert request.state == "withdrawn"
    assert request.drp_status == "revoked"
    assert drp.drp_status_poll(request_id=request.pk) == "revoked"


def test_fides_refuses_a_wrong_oauth_client(fides_controller, member, settings):
    request = queued(member, fides_controller)
    drp.drp_request_send(request_id=request.pk)
    settings.DRP_CREDENTIALS = {
        fides_controller.slug: {**settings.DRP_CREDENTIALS[fides_controller.slug], "client_secret": "wrong"}
    }
    with pytest.raises(DrpPermanentError, match="DRP OAuth token from Acme Ltd: HTTP 401"):
        drp.drp_status_poll(request_id=request.pk)
