"""Refusal grounds at the level of the law, offered and accepted only for the rights they apply to."""

import pytest

from core.audit import Actor
from requests_engine import services
from requests_engine.directory import contacts
from requests_engine.escalation.complaints import REFUSED, reason_sentences
from requests_engine.exceptions import RequestEngineError
from requests_engine.grounds import GROUNDS, ground_problem, grounds_for
from requests_engine.portal.forms import RefuseForm
from tests.requests_engine.api.test_api import client_for, sent_request, url

pytestmark = pytest.mark.django_db
CONTROLLER = Actor(Actor.CONTROLLER, "1")


def codes(right):
    return {code for code, _ in grounds_for(right)}


def test_each_right_is_offered_only_its_grounds():
    assert "art21_compelling_grounds" in codes("objection")
    assert "art21_compelling_grounds" not in codes("access") | codes("erasure") | codes("portability")
    assert "art17_3" in codes("erasure") and "art17_3" not in codes("access")
    assert {"legal_privilege", "third_party_data", "negotiations", "management_forecasts"} <= codes("access")
    assert "exemption" not in GROUNDS  # the old catch-all is no longer offered
    assert "does not apply to Access (Art 15) requests" in ground_problem("art17_3", "access")


def test_the_portal_form_offers_the_rights_grounds_with_none_chosen():
    form = RefuseForm(right="access")
    choices = form.fields["ground"].choices
    assert choices[0] == ("", "Choose the legal ground")
    assert "art21_compelling_grounds" not in dict(choices)
    assert not RefuseForm({"ground": "art17_3", "reasons": "x"}, right="access").is_valid()


def test_a_ground_for_another_right_is_refused_by_the_service_and_a_400_in_the_api(member, controller):
    erasure = sent_request(member, controller, "B1-M1-ER", right="erasure")
    with pytest.raises(RequestEngineError, match="does not apply to Erasure"):
        services.request_refuse(
            request_id=erasure.pk, ground="legal_privilege", reasons="Privileged.", actor=CONTROLLER
        )
    contact = contacts.contact_create(controller_id=controller.pk, email="api@acme.test")
    api = client_for(contacts.contact_issue_api_token(contact_id=contact.pk))
    access = sent_request(member, controller, "B1-M1-AC")
    response = api.post(
        url(access.reference, "refuse"),
        {"ground": "art21_compelling_grounds", "reasons": "We must keep training."},
        format="json",
    )
    assert response.status_code == 400 and "ground" in response.json()
    assert "art21_compelling_grounds" not in api.get(url(access.reference)).json()["refusal_grounds"]


def test_the_complaint_quotes_what_the_controller_had_to_show(member, controller):
    request = sent_request(member, controller, "B1-M1-AC")
    refused = services.request_refuse(
        request_id=request.pk, ground="manifestly_excessive", reasons="Too many.", actor=CONTROLLER
    )
    [sentence] = reason_sentences(refused, [REFUSED])
    assert "the burden of demonstrating it is the controller's (Art 12(5) UK GDPR)" in sentence
