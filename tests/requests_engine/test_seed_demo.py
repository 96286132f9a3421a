import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from communities.models import Mandate, Member
from requests_engine.events import find_chain_breaks
from requests_engine.models import Campaign, Controller, DataRightsRequest, RequestEvent


@pytest.mark.django_db
def test_seed_demo_builds_a_campaign_with_requests_in_several_states_and_says_where_to_log_in(capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "/admin/" in out and "coordinator@community.test" in out and "demo-coordinator" in out
    assert Controller.objects.count() == 200
    assert Mandate.objects.filter(state="active").count() == Member.objects.count() == 12
    states = set(DataRightsRequest.objects.values_list("state", flat=True))
    assert {"sent", "acknowledged", "extended", "info_requested", "refused", "fulfilled", "overdue"} <= states
    assert RequestEvent.objects.filter(kind="campaign.launched").count() == 1
    assert find_chain_breaks() == []


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = (Campaign.objects.count(), DataRightsRequest.objects.count(), RequestEvent.objects.count())
    call_command("seed_demo")
    assert (
        Campaign.objects.count(),
        DataRightsRequest.objects.count(),
        RequestEvent.objects.count(),
    ) == counts
    assert Controller.objects.count() == 200


@pytest.mark.django_db
def test_verify_audit_log_passes_on_the_demo_and_fails_after_a_hand_edit():
    call_command("seed_demo")
    call_command("verify_audit_log")
    event = RequestEvent.objects.filter(kind="request.refused").first()
    RequestEvent.objects.filter(pk=event.pk).update(payload={**event.payload, "reasons": "softened"})
    with pytest.raises(CommandError, match=f"event {event.pk}"):
        call_command("verify_audit_log")
