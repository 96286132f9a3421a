"""The DRP transport against stand-in DRP servers on 127.0.0.1.

There is no DRP 1.0 server we can run, and a real Fides (tests/integration/test_fides_drp.py) cannot be made
to fail on demand, so these tests run two small HTTP servers written here from the protocol texts. They are
stand-ins for external servers, not mocks of our code: our client talks real HTTP to them, the DRP 1.0 one
verifies the Ed25519 signatures with the agent's public key as a controller's server must, and the DRP 0.5
one (shaped like Fides) verifies the identity JWT with the controller's secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.db import connection
from django.utils import timezone

from communities.models import Identifier, Right
from core.audit import Actor
from requests_engine import services
from requests_engine.dispatch import drp
from requests_engine.dispatch.drp import DrpPermanentError, DrpStatus, DrpTemporaryError
from requests_engine.models import Controller, DataRightsRequest, RequestEvent
from tests.factories import make_member, make_request

SYSTEM = Actor.system()
AGENT_ID = "DATA_COMMUNITY_TEST"
AGENT_KEY = Ed25519PrivateKey.generate()
BUSINESS_ID = "ACME"
JWT_SECRET = "controller-drp-secret"
CLIENT_ID, CLIENT_SECRET = "community-agent", "client-secret"

Answer = tuple[int, Any]
App = Callable[[str, str, dict[str, str], bytes], Answer]


# -- a loopback HTTP server for the stand-ins ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.server.app(self.command, self.path, dict(self.headers), body)  # type: ignore[attr-defined]
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout test)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(app: App) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.app = app  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def bearer(headers: dict[str, str]) -> str:
    value = headers.get("Authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else ""


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- stand-in DRP 1.0 server ------------------------------------------------------------------------------


class Drp10StandIn:
    """Stand-in for an external DRP 1.0 server (a controller's privacy infrastructure provider), written from
    DRP 1.0 §2 and §3.07: pairwise key set-up, signed exercise and revoke, bearer-token status. It checks what
    a real server must: the Ed25519 signature against the agent's key in the directory, the agent and business
    ids, the validity window, and that a token belongs to the agent whose request it reads."""

    def __init__(self, *, directory: dict[str, Ed25519PublicKey], business_id: str = BUSINESS_ID) -> None:
        self.directory = directory
        self.business_id = business_id
        self.tokens: dict[str, str] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.registrations = 0

    # what the controller does on its side
    def set_status(self, request_id: str, status: str, reason: str = "", **extra: str) -> None:
        self.requests[request_id].update(status=status, reason=reason, **extra)

    def forget_tokens(self) -> None:
        self.tokens.clear()

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        self.calls.append((method, path))
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(path).path.strip("/").split("/")]
        if parts[:2] == ["v1", "agent"] and len(parts) == 3:
            if method == "POST":
                return self.register(parts[2], body)
            return (200, {}) if self.tokens.get(bearer(headers)) == parts[2] else (403, b"")
        if parts[:2] != ["v1", "data-rights-request"]:
            return 404, {"code": "404", "message": "No such endpoint."}
        agent = self.tokens.get(bearer(headers))
        if agent is None:
            return 403, {"code": "403", "message": "Unknown bearer token.", "fatal": True}
        if method == "POST" and len(parts) == 2:
            return self.exercise(agent, body)
        request = self.requests.get(parts[2]) if len(parts) == 3 else None
        if request is None:
            return 404, {"code": "404", "message": "No such request."}
        if request["agent"] != agent:
            return 403, {"code": "403", "message": "Not your request.", "fatal": True}
        if method == "DELETE":
            signed = self.verified(agent, body)
            if signed is None:
                return 403, {"code": "403", "message": "Bad signature.", "fatal": True}
            request.update(status="revoked", reason="", processing_details=signed.get("reason", ""))
        return 200, self.status_of(parts[2])

    def verified(self, agent: str, body: bytes) -> dict[str, Any] | None:
        """§3.07: base64 → signature (64 bytes) + JSON, the signature checked with the agent's verify key."""
        key = self.directory.get(agent)
        try:
            raw = base64.b64decode(body, validate=True)
            if key is None:
                return None
            key.verify(raw[:64], raw[64:])
            return json.loads(raw[64:])
        except (InvalidSignature, ValueError):
            return None

    def envelope_problem(self, claims: dict[str, Any], agent: str) -> str:
        if claims.get("agent-id") != agent:
            return "agent-id does not match"
        if claims.get("business-id") != self.business_id:
            return "not for this business"
        issued = dt.datetime.fromisoformat(claims["issued-at"].replace("Z", "+00:00"))
        expires = dt.datetime.fromisoformat(claims["expires-at"].replace("Z", "+00:00"))
        if not issued <= now_utc() + dt.timedelta(seconds=2) < expires + dt.timedelta(seconds=2):
            return "outside its validity window"
        if expires - issued > dt.timedelta(minutes=10):
            return "valid for too long"
        return ""

    def register(self, agent: str, body: bytes) -> Answer:
        claims = self.verified(agent, body)
        if claims is None or self.envelope_problem(claims, agent) or claims.get("drp.version") != "1.0":
            return 403, b""  # §2.05.1: 403 with no body
        self.registrations += 1
        token = uuid.uuid4().hex
        self.tokens[token] = agent
        return 200, {"agent-id": agent, "token": token}

    def exercise(self, agent: str, body: bytes) -> Answer:
        claims = self.verified(agent, body)
        if claims is None:
            return 403, {"code": "403", "message": "Bad signature.", "fatal": True}
        if problem := self.envelope_problem(claims, agent):
            return 400, {"code": "400", "message": problem, "fatal": True}
        if claims.get("exercise") not in ("access", "deletion"):
            return 400, {"code": "400", "message": "Unsupported rights actions submitted.", "fatal": True}
        request_id = str(uuid.uuid4())
        self.requests[request_id] = {"agent": agent, "claims": claims, "status": "open", "reason": ""}
        return 200, self.status_of(request_id)

    def status_of(self, request_id: str) -> dict[str, Any]:
        request = self.requests[request_id]
        answer = {
            "request_id": request_id,
            "agent_request_id": request["claims"].get("agent-request-id"),
            "status": request["status"],
            "received_at": now_utc().isoformat(),
        }
        for name in ("reason", "processing_details", "user_verification_url", "results_url"):
            if request.get(name):
                answer[name] = request[name]
        return answer


# -- stand-in DRP 0.5 server, shaped like Fides -----------------------------------------------------------


def hs256_verified(token: str, secret: str) -> dict[str, Any] | None:
    """Check an HS256 JWT with cryptography's HMAC (not the code under test); its claims if it verifies."""
    header, payload, signature = token.split(".")
    mac = crypto_hmac.HMAC(secret.encode(), hashes.SHA256())
    mac.update(f"{header}.{payload}".encode())
    try:
        mac.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    except InvalidSignature:
        return None
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["alg"] == "HS256"
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Drp05StandIn:
    """Stand-in for an external DRP 0.5 server with Fides' paths, OAuth client credentials and answers.
    A test scripts its failures (`fail_with`, `delay`) and what the controller does (`set_status`)."""

    def __init__(self) -> None:
        self.exercises: list[dict[str, Any]] = []
        self.identities: list[dict[str, Any]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.fail_with: Answer | None = None
        self.delay = 0.0

    def set_status(self, request_id: str, status: str, reason: str = "", **extra: str) -> None:
        self.statuses[request_id].update(status=status, reason=reason or None, **extra)

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if self.delay:
            time.sleep(self.delay)
        url = urllib.parse.urlsplit(path)
        if url.path == "/api/v1/oauth/token" and method == "POST":
            form = urllib.parse.parse_qs(body.decode())
            if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                return 401, {"detail": "Authentication Failure"}
            self.token_requests += 1
            token = uuid.uuid4().hex
            self.tokens.add(token)
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        if self.fail_with:
            return self.fail_with
        if url.path == "/api/v1/drp/exercise" and method == "POST":
            data = json.loads(body)
            identity = hs256_verified(data["identity"], JWT_SECRET)
            if identity is None:
                return 422, {"detail": "DRP privacy request could not be exercised"}
            self.exercises.append(data)
            self.identities.append(identity)
            request_id = f"pri_{uuid.uuid4()}"
            self.statuses[request_id] = {"request_id": request_id, "status": "open", "reason": None}
            return 200, self.statuses[request_id]
        if bearer(headers) not in self.tokens:
            return 401, {"detail": "Failed to authenticate"}
        if url.path == "/api/v1/drp/status" and method == "GET":
            request_id = urllib.parse.parse_qs(url.query)["request_id"][0]
            if request_id not in self.statuses:
                return 404, {"detail": f"Privacy request with ID {request_id} does not exist"}
            return 200, self.statuses[request_id]
        if url.path == "/api/v1/drp/revoke" and method == "POST":
            data = json.loads(body)
            status = self.statuses[data["request_id"]]
            if status["status"] != "open":
                return 400, {"detail": "Invalid revoke request. Can only revoke `pending` requests."}
            status.update(status="revoked", reason=data.get("reason"))
            return 200, status
        return 404, {"detail": "Not Found"}


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def drp_settings(settings):
    settings.DRP_AGENT_ID = AGENT_ID
    settings.DRP_SIGNING_KEY = base64.b64encode(AGENT_KEY.private_bytes_raw()).decode()
    settings.DRP_CREDENTIALS = {
        "acme": {
            "jwt_secret": JWT_SECRET,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "business_id": BUSINESS_ID,
        }
    }
    settings.DRP_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def fides_like(drp_settings) -> Iterator[tuple[Drp05StandIn, str]]:
    server = Drp05StandIn()
    with serving(server) as url:
        yield server, url


@pytest.fixture
def drp10_server(drp_settings) -> Iterator[tuple[Drp10StandIn, str]]:
    server = Drp10StandIn(directory={AGENT_ID: AGENT_KEY.public_key()})
    with serving(server) as url:
        yield server, url


def use_drp(controller: Controller, endpoint: str, version: str) -> None:
    Controller.objects.filter(pk=controller.pk).update(
        transport="drp", drp_endpoint=endpoint, drp_version=version
    )


def queued(member, controller, *, right=Right.ACCESS) -> DataRightsRequest:
    Identifier.objects.get_or_create(
        member=member, controller=controller, kind="email", value="ada@shop.test"
    )
    Identifier.objects.get_or_create(member=member, kind="phone", value="07700 900123")
    Identifier.objects.get_or_create(member=member, controller=controller, kind="account_id", value="C-991")
    request = make_request(member, controller, right=right)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    return request


def fresh(request: DataRightsRequest) -> DataRightsRequest:
    return DataRightsRequest.objects.get(pk=request.pk)


def event_kinds(request: DataRightsRequest) -> list[str]:
    return list(RequestEvent.objects.filter(request=request).values_list("kind", flat=True))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the identity JWT --------------------------------------------------------------------------------------


def test_identity_jwt_has_no_aud_and_verifies_with_the_controller_secret():
    token = drp.identity_jwt({"name": "Ada Lovelace", "email": "ada@shop.test"}, JWT_SECRET)
    claims = hs256_verified(token, JWT_SECRET)
    assert claims == {"name": "Ada Lovelace", "email": "ada@shop.test"}
    assert "aud" not in claims
    assert hs256_verified(token, "another-secret") is None


# -- DRP 0.5 (Fides-shaped) ---------------------------------------------------------------------------------


def test_sends_an_access_request_by_drp_0_5_and_records_it_as_sent(fides_like, member, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)

    drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "sent"
    assert request.received_on == timezone.localdate()
    assert request.drp_request_id.startswith("pri_")
    assert request.message_id == request.drp_request_id
    assert request.drp_status == "open"
    dispatched = RequestEvent.objects.get(request=request, kind="request.dispatched")
    assert dispatched.payload["channel"] == "drp"
    [body] = server.exercises
    assert body["meta"] == {"version": "0.5"}
    assert body["exercise"] == ["access"]
    assert body["regime"] == "ccpa"
    [identity] = server.identities
    assert identity["email"] == "ada@shop.test"
    assert identity["name"] == "Ada Lovelace"
    assert identity["phone_number"] == "+447700900123"
    assert "aud" not in identity
    assert "C-991" not in json.dumps(identity)  # only what DRP identifies people by is disclosed


def test_erasure_goes_as_a_deletion(fides_like, member, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller, right=Right.ERASURE)
    drp.drp_request_send(request_id=request.pk)
    assert server.exercises[0]["exercise"] == ["deletion"]


def test_sending_twice_exercises_once(fides_like, member, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    drp.drp_request_send(request_id=request.pk)
    assert len(server.exercises) == 1
    assert event_kinds(request).count("request.dispatched") == 1


def test_a_request_another_sender_holds_is_left_alone_until_its_claim_goes_stale(
    fides_like, member, controller
):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    # Another worker has claimed it (as drp._claim does) and is still within DRP_CLAIM_SECONDS.
    DataRightsRequest.objects.filter(pk=request.pk).update(drp_status="sending", updated_at=timezone.now())
    drp.drp_request_send(request_id=request.pk)
    assert not server.exercises
    assert fresh(request).state == "queued"

    # That worker died: its claim is older than DRP_CLAIM_SECONDS (600 s by default).
    DataRightsRequest.objects.filter(pk=request.pk).update(
        updated_at=timezone.now() - dt.timedelta(minutes=11)
    )
    drp.drp_request_send(request_id=request.pk)
    assert len(server.exercises) == 1
    assert fresh(request).state == "sent"


@pytest.mark.parametrize(
    ("status", "detail"),
    [(422, "DRP privacy request could not be exercised"), (404, "No policy found with drp action 'access'.")],
)
def test_a_4xx_answer_moves_the_request_to_failed_delivery_with_the_reason(
    fides_like, member, controller, status, detail
):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    server.fail_with = (status, {"detail": detail})

    drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "failed_delivery"
    assert request.delivery_error == f"DRP exercise at Acme Ltd: HTTP {status}: {detail}"
    assert request.drp_status == "" and request.drp_request_id == ""
    assert event_kinds(request)[-1] == "request.delivery_failed"


def test_an_identity_signed_with_the_wrong_secret_is_refused_for_good(
    fides_like, member, controller, settings
):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    settings.DRP_CREDENTIALS = {"acme": {**settings.DRP_CREDENTIALS["acme"], "jwt_secret": "not-the-secret"}}
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert "HTTP 422" in request.delivery_error


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_5xx_or_429_answer_is_temporary_and_leaves_the_request_queued(
    fides_like, member, controller, status
):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    events_before = event_kinds(request)
    server.fail_with = (status, b"Internal Server Error")

    with pytest.raises(DrpTemporaryError, match=f"HTTP {status}"):
        drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "queued"
    assert request.drp_status == ""  # the claim is released for the retry
    assert event_kinds(request) == events_before

    server.fail_with = None  # the server recovers; the task's retry succeeds
    drp.drp_request_send(request_id=request.pk)
    assert fresh(request).state == "sent"


def test_giving_up_after_the_last_retry_fails_delivery_with_the_error(fides_like, member, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    server.fail_with = (503, b"")
    with pytest.raises(DrpTemporaryError) as error:
        drp.drp_request_send(request_id=request.pk)
    drp.drp_sending_give_up(request_id=request.pk, error=f"{error.value} (gave up after 10 tries)")
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert request.delivery_error == "DRP exercise at Acme Ltd: HTTP 503 (gave up after 10 tries)"
    drp.drp_sending_give_up(request_id=request.pk, error="again")  # a duplicate task changes nothing
    assert event_kinds(request).count("request.delivery_failed") == 1


def test_a_server_that_does_not_answer_in_time_is_a_temporary_error(fides_like, member, controller, settings):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    settings.DRP_TIMEOUT_SECONDS = 0.3
    server.delay = 1.0
    request = queued(member, controller)
    with pytest.raises(DrpTemporaryError, match="did not answer"):
        drp.drp_request_send(request_id=request.pk)
    assert fresh(request).state == "queued"


def test_a_server_that_is_down_is_a_temporary_error(drp_settings, member, controller):
    use_drp(controller, f"http://127.0.0.1:{closed_port()}", "0.5")
    request = queued(member, controller)
    with pytest.raises(DrpTemporaryError, match="did not answer"):
        drp.drp_request_send(request_id=request.pk)
    assert fresh(request).state == "queued"


def test_a_right_drp_cannot_carry_fails_delivery_without_calling_the_server(fides_like, member, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    request = queued(member, controller, right=Right.RECTIFICATION)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert "DRP has no action for a Rectification" in request.delivery_error
    assert not server.exercises


@pytest.mark.parametrize(
    ("credentials", "version", "endpoint", "reason"),
    [
        ({}, "0.5", "http://127.0.0.1:9", "No DRP identity secret (jwt_secret) is set up for Acme Ltd."),
        ({"jwt_secret": "x"}, "", "http://127.0.0.1:9", "Acme Ltd has no DRP version (0.5 or 1.0) set."),
        ({"jwt_secret": "x"}, "0.5", "http://drp.acme.test", "must be an https:// URL"),
    ],
)
def test_an_incomplete_drp_set_up_fails_delivery_with_a_reason_to_act_on(
    drp_settings, member, controller, credentials, version, endpoint, reason
):
    drp_settings.DRP_CREDENTIALS = {"acme": credentials}
    use_drp(controller, endpoint, version)
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert reason in request.delivery_error


def test_a_member_without_email_or_phone_fails_delivery(fides_like, community, controller):
    server, url = fides_like
    use_drp(controller, url, "0.5")
    member = make_member(community, "Grace Hopper")
    request = make_request(member, controller)
    services.request_approve(request_id=request.pk, actor=SYSTEM)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert "no email address or phone number" in request.delivery_error


def sent_by_drp(server, url, member, controller) -> DataRightsRequest:
    use_drp(controller, url, "0.5")
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    return fresh(request)


@pytest.mark.parametrize(
    ("status", "reason", "state", "ground"),
    [
        ("open", "", "sent", ""),
        ("in_progress", "", "acknowledged", ""),
        ("fulfilled", "", "fulfilled", ""),
        ("denied", "no_match", "fulfilled", ""),  # no data held: an answer, not a refusal
        ("denied", "insuf_verification", "refused", "identity_not_verified"),
        ("denied", "too_many_requests", "refused", "manifestly_excessive"),
        ("denied", "outside_jurisdiction", "refused", "other"),
        ("revoked", "", "sent", ""),
        ("expired", "", "sent", ""),
    ],
)
def test_polling_maps_the_drp_status_to_our_lifecycle(
    fides_like, member, controller, status, reason, state, ground
):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    server.set_status(request.drp_request_id, status, reason, processing_details="Looked into it.")

    assert drp.drp_status_poll(request_id=request.pk) == status

    request = fresh(request)
    assert request.state == state
    assert request.drp_status == (f"{status}/{reason}" if reason else status)
    assert request.refusal_ground == ground
    if state == "refused":
        assert request.refusal_reasons == (
            f"Denied through the controller's DRP endpoint (reason: {reason}): Looked into it."
        )
        event = RequestEvent.objects.filter(request=request).last()
        assert (event.actor_kind, event.actor_id) == ("controller", str(controller.pk))


def test_polling_twice_changes_nothing_the_second_time(fides_like, member, controller):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    server.set_status(request.drp_request_id, "in_progress")
    drp.drp_status_poll(request_id=request.pk)
    events = event_kinds(request)
    drp.drp_status_poll(request_id=request.pk)
    assert event_kinds(request) == events
    assert fresh(request).state == "acknowledged"
    assert server.token_requests == 1  # the OAuth token is kept while it is valid


def test_a_refused_cached_token_is_replaced_once(fides_like, member, controller):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    drp.drp_status_poll(request_id=request.pk)
    server.tokens.clear()  # the server restarted and forgot its tokens
    drp.drp_status_poll(request_id=request.pk)
    assert server.token_requests == 2


def test_polling_a_request_the_server_does_not_know_is_a_permanent_error(fides_like, member, controller):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    del server.statuses[request.drp_request_id]
    with pytest.raises(DrpPermanentError, match="HTTP 404"):
        drp.drp_status_poll(request_id=request.pk)
    assert fresh(request).state == "sent"


def test_revoking_a_request_the_controller_has_started_is_refused(fides_like, member, controller):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    server.set_status(request.drp_request_id, "fulfilled")
    with pytest.raises(DrpPermanentError, match="HTTP 400: Invalid revoke request"):
        drp.drp_request_revoke(request_id=request.pk, reason="Mandate revoked")
    assert fresh(request).state == "sent"


def test_revoking_an_open_request_withdraws_it(fides_like, member, controller):
    server, url = fides_like
    request = sent_by_drp(server, url, member, controller)
    drp.drp_request_revoke(request_id=request.pk, reason="The member revoked their mandate.")
    request = fresh(request)
    assert request.state == "withdrawn"
    assert request.drp_status == "revoked"  # Fides echoes our free-text reason: not kept as a DRP reason
    assert server.statuses[request.drp_request_id]["reason"] == "The member revoked their mandate."
    drp.drp_request_revoke(request_id=request.pk)  # again: nothing to do
    assert event_kinds(request).count("request.withdrawn") == 1


def test_poll_open_requests_polls_each_drp_request_and_goes_on_past_a_failing_endpoint(
    fides_like, member, community, controller, settings
):
    server, url = fides_like
    settings.DRP_CREDENTIALS = {**settings.DRP_CREDENTIALS, "down": settings.DRP_CREDENTIALS["acme"]}
    first = sent_by_drp(server, url, member, controller)
    second = make_request(member, controller, right=Right.ERASURE)
    services.request_approve(request_id=second.pk, actor=SYSTEM)
    drp.drp_request_send(request_id=second.pk)
    second = fresh(second)
    server.set_status(first.drp_request_id, "fulfilled")
    server.set_status(second.drp_request_id, "in_progress")
    # A third request at a controller whose endpoint is down.
    down = Controller.objects.create(
        slug="down",
        name="Down Ltd",
        transport="drp",
        drp_endpoint=f"http://127.0.0.1:{closed_port()}",
        drp_version="0.5",
    )
    third = make_request(member, down)
    services.request_approve(request_id=third.pk, actor=SYSTEM)
    services.request_dispatch(request_id=third.pk, received_on=timezone.localdate(), actor=SYSTEM)
    DataRightsRequest.objects.filter(pk=third.pk).update(drp_request_id="pri_elsewhere", drp_status="open")
    # And one sent by email, which is not polled.
    email_request = make_request(make_member(community, "Grace Hopper"), controller)
    services.request_approve(request_id=email_request.pk, actor=SYSTEM)
    services.request_dispatch(request_id=email_request.pk, received_on=timezone.localdate(), actor=SYSTEM)

    assert drp.drp_requests_poll(chunk=1) == {"polled": 2, "unreachable": 1}
    assert (fresh(first).state, fresh(second).state, fresh(third).state) == (
        "fulfilled",
        "acknowledged",
        "sent",
    )
    events = RequestEvent.objects.count()

    # Run again: the fulfilled one is no longer polled and nothing moves.
    assert drp.drp_requests_poll(chunk=1) == {"polled": 1, "unreachable": 1}
    assert RequestEvent.objects.count() == events


# -- the status table itself -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "previous", "status", "reason", "service"),
    [
        ("sent", "open", "open", "", None),
        ("sent", "open", "in_progress", "", "request_acknowledge"),
        ("acknowledged", "in_progress", "in_progress", "", None),
        ("overdue", "open", "in_progress", "", None),
        (
            "acknowledged",
            "in_progress",
            "in_progress",
            "need_user_verification",
            "request_ask_for_information",
        ),
        ("sent", "open", "in_progress", "needs_user_verification", "request_ask_for_information"),
        (
            "info_requested",
            "in_progress/need_user_verification",
            "in_progress",
            "",
            "request_give_information",
        ),
        ("info_requested", "in_progress", "in_progress", "", None),  # asked by email, not by DRP
        ("overdue", "in_progress", "fulfilled", "", "request_fulfil"),
        ("fulfilled", "fulfilled", "fulfilled", "", None),
        ("extended", "in_progress", "denied", "claim_not_covered", "request_refuse"),
        ("withdrawn", "revoked", "denied", "other", None),
        ("acknowledged", "in_progress", "revoked", "", None),
        ("sent", "open", "teleported", "", None),
    ],
)
def test_status_table(state, previous, status, reason, service):
    step = drp.plan_transition(
        state=state, previous=previous, status=DrpStatus(request_id="r1", status=status, reason=reason)
    )
    assert (step.service.__name__ if step else None) == service


# -- DRP 1.0 ---------------------------------------------------------------------------------------------


def test_drp_1_0_sets_up_a_pairwise_key_then_exercises_a_signed_request(drp10_server, member, controller):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    request = queued(member, controller)

    drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "sent"
    assert server.registrations == 1
    stored = server.requests[request.drp_request_id]
    claims = stored["claims"]
    assert claims["agent-id"] == AGENT_ID and claims["business-id"] == BUSINESS_ID
    assert claims["drp.version"] == "1.0"
    assert claims["exercise"] == "access"
    assert claims["agent-request-id"] == request.reference
    assert (claims["email"], claims["name"], claims["phone_number"]) == (
        "ada@shop.test",
        "Ada Lovelace",
        "+447700900123",
    )

    server.set_status(request.drp_request_id, "in_progress", processing_details="We are on it.")
    assert drp.drp_status_poll(request_id=request.pk) == "in_progress"
    assert fresh(request).state == "acknowledged"
    assert server.registrations == 1  # the pairwise token is reused
    assert drp.Drp10Client(fresh(request).controller).token_is_valid()


def test_drp_1_0_needs_user_verification_asks_for_identity_and_resumes(drp10_server, member, controller):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)

    server.set_status(
        request.drp_request_id,
        "in_progress",
        "need_user_verification",
        user_verification_url="https://pip.acme.test/verify/1",
    )
    drp.drp_status_poll(request_id=request.pk)
    request = fresh(request)
    assert request.state == "info_requested"
    assert request.info_kind == "identity"
    assert "https://pip.acme.test/verify/1" in request.info_question
    assert request.clock_paused

    server.set_status(request.drp_request_id, "in_progress")  # the member verified
    drp.drp_status_poll(request_id=request.pk)
    request = fresh(request)
    assert request.state == "acknowledged"
    assert request.clock_start_on == timezone.localdate()


def test_drp_1_0_sets_up_a_new_key_when_the_server_forgets_the_token(drp10_server, member, controller):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    server.forget_tokens()
    assert not drp.Drp10Client(fresh(request).controller).token_is_valid()
    drp.drp_status_poll(request_id=request.pk)
    assert server.registrations == 2


def test_drp_1_0_a_request_signed_with_a_key_not_in_the_directory_is_refused(
    drp10_server, member, controller
):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    server.directory[AGENT_ID] = Ed25519PrivateKey.generate().public_key()  # the directory lists another key
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)
    assert request.state == "failed_delivery"
    assert request.delivery_error == "DRP pairwise key set-up with Acme Ltd: HTTP 403"
    assert not server.requests


def test_drp_1_0_a_request_for_another_business_is_refused(drp10_server, member, controller, settings):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    settings.DRP_CREDENTIALS = {"acme": {"business_id": "SOMEONE_ELSE"}}
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    assert fresh(request).state == "failed_delivery"


def test_drp_1_0_revoke_sends_a_signed_delete_and_withdraws(drp10_server, member, controller):
    server, url = drp10_server
    use_drp(controller, url, "1.0")
    request = queued(member, controller)
    drp.drp_request_send(request_id=request.pk)
    request = fresh(request)

    drp.drp_request_revoke(request_id=request.pk, reason="Mandate revoked")

    assert server.requests[request.drp_request_id]["status"] == "revoked"
    assert server.requests[request.drp_request_id]["processing_details"] == "Mandate revoked"
    assert ("DELETE", f"/v1/data-rights-request/{request.drp_request_id}") in server.calls
    request = fresh(request)
    assert request.state == "withdrawn"
    assert request.drp_status == "revoked"


@pytest.mark.django_db(transaction=True)
def test_a_request_withdrawn_while_its_exercise_was_in_flight_is_revoked(drp_settings, member, controller):
    server = Drp10StandIn(directory={AGENT_ID: AGENT_KEY.public_key()})
    request = queued(member, controller)

    def exercise_while_the_member_withdraws(method, path, headers, body):
        if method == "POST" and path == "/v1/data-rights-request":
            try:  # the member's withdrawal commits while our exercise call waits for its answer
                services.request_withdraw(request_id=request.pk, actor=SYSTEM, reason="Mandate revoked")
            finally:
                connection.close()  # this server thread's own database connection
        return server(method, path, headers, body)

    with serving(exercise_while_the_member_withdraws) as url:
        use_drp(controller, url, "1.0")
        drp.drp_request_send(request_id=request.pk)

    request = fresh(request)
    assert request.state == "withdrawn"
    assert request.drp_request_id
    assert server.requests[request.drp_request_id]["status"] == "revoked"
