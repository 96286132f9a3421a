import pytest
from allauth.mfa.models import Authenticator

from tests.factories import verified_user

pytestmark = pytest.mark.django_db


def test_staff_without_a_second_factor_are_sent_to_set_one_up(client, settings):
    settings.STAFF_MFA_REQUIRED = True
    staff = verified_user("coord@example.test")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/totp/activate/"
    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": "x"})
    assert client.get("/admin/").status_code == 200


def test_members_are_not_forced_into_two_step_sign_in(client, settings):
    settings.STAFF_MFA_REQUIRED = True
    client.force_login(verified_user("member@example.test"))
    assert client.get("/me/").status_code == 200


def test_repeated_failed_logins_are_rate_limited(client):
    verified_user("target@example.test", "right-Password-123")
    for i in range(5):
        client.post("/accounts/login/", {"login": "target@example.test", "password": f"wrong-{i}"})
    # Even the right password is refused for a while after five failures for that address.
    response = client.post(
        "/accounts/login/", {"login": "target@example.test", "password": "right-Password-123"}
    )
    assert "_auth_user_id" not in client.session
    assert (
        response.status_code in (200, 429) and "Too many failed login attempts" in response.content.decode()
    )


def test_the_admin_login_goes_through_the_accounts_sign_in(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_coordinator_can_make_an_invite_link(client, coordinator, community):
    client.force_login(coordinator)
    response = client.post(
        "/admin/communities/invite/add/",
        {
            "community": community.pk,
            "note": "for Sam",
            "expires_at_0": "2030-01-01",
            "expires_at_1": "12:00:00",
            "max_uses": 1,
        },
    )
    assert response.status_code == 302
    from communities.models import Invite

    invite = Invite.objects.get()
    page = client.get(f"/admin/communities/invite/{invite.pk}/change/").content.decode()
    assert f"/join/{community.slug}/?invite={invite.token}" in page
