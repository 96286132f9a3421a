"""Refusal grounds at the level of the law, offered and accepted only for the rights they apply to."""

import pytest
from django.template.loader import render_to_string

from core.audit import Actor
from requests_engine import services
from requests_engine.directory import contacts
from requests_engine.escalation.complaints import REFUSED, reason_sentences
from requests_engine.exceptions import RequestEngineError
from requests_engine.grounds import GROUNDS, ground_problem, grounds_for
from requests_engine.models import DataRightsRequest, ObjectionTo
from requests_engine.portal.forms import RefuseForm
from requests_engine.portal.views import _grounds_of
from tests.factories import make_campaign
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


def direct_marketing_objection(member, controller, reference):
    request = sent_request(member, controller, reference, right="objection")
    campaign = make_campaign(member.community, name="Stop the mailings", rights=["objection"])
    campaign.objection_to = ObjectionTo.DIRECT_MARKETING
    campaign.save(update_fields=["objection_to"])
    DataRightsRequest.objects.filter(pk=request.pk).update(campaign=campaign)
    return DataRightsRequest.objects.get(pk=request.pk)


def test_a_direct_marketing_objection_never_meets_compelling_grounds(member, controller):
    # Art 21(2)-(3) UK GDPR: absolute. Not offered in the portal, refused by the service, a 400 in the API.
    objection = direct_marketing_objection(member, controller, "B1-M1-OB")
    assert "art21_compelling_grounds" not in dict(
        RefuseForm(**_grounds_of(objection)).fields["ground"].choices
    )
    assert "manifestly_unfounded" in dict(RefuseForm(**_grounds_of(objection)).fields["ground"].choices)
    with pytest.raises(RequestEngineError, match="cannot answer an objection to direct marketing"):
        services.request_refuse(
            request_id=objection.pk, ground="art21_compelling_grounds", reasons="We must.", actor=CONTROLLER
        )
    contact = contacts.contact_create(controller_id=controller.pk, email="api@acme.test")
    api = client_for(contacts.contact_issue_api_token(contact_id=contact.pk))
    response = api.post(
        url(objection.reference, "partially-fulfil"),
        {"ground": "art21_compelling_grounds", "reasons": "We keep profiling."},
        format="json",
    )
    assert response.status_code == 400
    assert "absolute" in response.json()["ground"][0]
    detail = api.get(url(objection.reference)).json()
    assert "art21_compelling_grounds" not in detail["refusal_grounds"]
    assert detail["objection_to"] == "direct_marketing"
    # An Art 21(1) objection may still meet them: the controller bears the burden of showing them.
    ordinary = sent_request(member, controller, "B1-M1-OB2", right="objection")
    assert "art21_compelling_grounds" in api.get(url(ordinary.reference)).json()["refusal_grounds"]


def test_the_direct_marketing_letter_asks_for_an_absolute_stop(member, controller):
    objection = direct_marketing_objection(member, controller, "B1-M1-OB")
    text = render_to_string(
        "requests_engine/letters/rights/objection.txt",
        {"campaign": objection.campaign, "section": {"whom": "Ada Lovelace"}},
    )
    assert "Article 21(2)" in text and "Article 21(3)" in text
    assert "compelling legitimate grounds" not in text and "particular situation" in text  # "does not depend"
