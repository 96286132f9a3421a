"""The standing cast: a community with a coordinator, a member with an active mandate, a controller,
and an outsider. Factories build the rest."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from communities.models import Community, Right
from core.audit import Actor
from requests_engine.models import Controller
from tests.factories import make_mandate, make_member, make_request
from tests.smtp import Mailbox, free_port, use_smtp


@pytest.fixture(scope="session")
def seal_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("seal")


@pytest.fixture(autouse=True)
def _files_stay_in_tmp(settings, tmp_path, seal_dir):
    """Uploaded and generated files, the seal and audit keys and the audit checkpoints never land in the
    project's own var/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.SEAL_DIR = str(seal_dir)
    settings.KEY_DIR = str(tmp_path / "keys")
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "audit")


@pytest.fixture(autouse=True)
def _rate_limits_start_afresh():
    """Rate limits count in the cache: each test starts with none used (a test of a limit uses its own)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def coordinator(db):
    return get_user_model().objects.create_user(
        "coord@community.test", "coord@community.test", "pw", is_staff=True, is_superuser=True
    )


@pytest.fixture
def coordinator_actor(coordinator):
    return Actor.user(coordinator)


@pytest.fixture
def community(db):
    return Community.objects.create(
        slug="writers",
        name="Writers",
        purpose="Find out about AI training.",
        contact_email="c@community.test",
        rights=[Right.ACCESS, Right.ERASURE],
    )


@pytest.fixture
def controller(db):
    return Controller.objects.create(slug="acme", name="Acme Ltd", email="privacy@acme.test")


@pytest.fixture
def member(community):
    member = make_member(community)
    make_mandate(member)
    return member


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider@elsewhere.test", "outsider@elsewhere.test", "pw")


@pytest.fixture
def data_request(member, controller):
    return make_request(member, controller)


@pytest.fixture
def mailbox(settings):
    """An SMTP server on 127.0.0.1 that the service's email goes to for this test."""
    from aiosmtpd.controller import Controller as SMTPController

    box = Mailbox()
    server = SMTPController(box, hostname="127.0.0.1", port=free_port())
    server.start()
    use_smtp(settings, server.port)
    yield box
    server.stop()
