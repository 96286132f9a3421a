"""The public register against a hand-computed fixture: every figure, the under-5 suppression, the JSON
equal to the page's data, and no member's name or reference anywhere in what the public sees.

The fixture (all requests received on Monday 2 March 2026, due Thursday 2 April 2026):

Acme Data Ltd, 7 requests          answered      days  outcome
  r1                                12 Mar       10    on time
  r2                                22 Mar       20    on time
  r3                                30 Mar       28    on time
  r4 extended 1 month on 20 Mar     20 Apr       49    on time (due 5 May: 2 May is a Saturday, 4 May
                                                       the Early May bank holiday)
  r5                                15 Apr       44    answered late
  r6 refused (legal privilege)             9 Mar        7    on time
  r7 no answer: overdue 3 Apr, complaint, escalated to the ICO              no answer after the deadline
  → received 7, answered 6, on time 5 of 7 = 71%, median of 7 10 20 28 44 49 = (20 + 28) / 2 = 24,
    extensions 1, refusals 1 (legal privilege), complaints: 1 to Acme and 1 to the ICO (a draft is not counted),
    1 request escalated to the ICO.
Globex, 3 requests, all answered on time → every figure withheld ("fewer than 5").
Initech: one request approved but never sent → not on the register.
Communities: Writers with 8 members and one who left (about 10), Painters with 3 (fewer than 5).
"""

from __future__ import annotations

import datetime
import json
import re

import pytest
import time_machine
from django.urls import include, path, reverse

from communities.models import Community, Right
from core.audit import Actor
from requests_engine import services as engine
from requests_engine import sweep
from requests_engine.escalation import complaints
from requests_engine.models import Complaint, Controller, RefusalGround
from requests_engine.register import views as register_views
from tests.factories import make_mandate, make_member, make_request

# This module is also the URLconf of its tests: the register where config/urls.py will mount it, plus
# the rest of the site (base.html links to it).
urlpatterns = [
    path("register/", include("requests_engine.register.urls")),
    path("api/v1/register/", register_views.register_json, name="api-register"),
    path(
        "api/v1/register/controllers/<slug:slug>/",
        register_views.controller_json,
        name="api-register-controller",
    ),
    path("", include("config.urls")),
]
pytestmark = pytest.mark.urls(__name__)

ROBOT = Actor.system("test")
MARCH_2 = datetime.date(2026, 3, 2)
NAMES = [
    "Ada Lovelace",
    "Grace Hopper",
    "Katherine Johnson",
    "Hedy Lamarr",
    "Radia Perlman",
    "Barbara Liskov",
    "Frances Allen",
    "Margaret Hamilton",
]


def at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)


def dispatched(member, controller, received_on=MARCH_2):
    request = make_request(member, controller, reference=f"REQ-{member.reference}-{controller.slug}")
    engine.request_approve(request_id=request.pk, actor=ROBOT)
    return engine.request_dispatch(request_id=request.pk, received_on=received_on, actor=ROBOT)


def sent_complaint(*, kind, community, controller, requests, sent_on):
    # No complaint service exists yet: the model's own transition, as a service would call it.
    complaint = Complaint.objects.create(kind=kind, community=community, controller=controller, grounds="x")
    complaint.requests.set(requests)
    complaint.send(sent_on=sent_on)
    complaint.save()
    return complaint


@pytest.fixture
def world(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a dozen users, quickly
    writers = Community.objects.create(
        slug="writers",
        name="Writers' Collective",
        purpose="We ask AI developers about our work.",
        contact_email="hello@writers.test",
        rights=[Right.ACCESS, Right.ERASURE],
    )
    painters = Community.objects.create(
        slug="painters",
        name="Painters",
        purpose="Art and data.",
        contact_email="hi@painters.test",
        rights=[Right.OBJECTION],
    )
    acme = Controller.objects.create(slug="acme", name="Acme Data Ltd", email="privacy@acme.test")
    globex = Controller.objects.create(slug="globex", name="Globex", email="dpo@globex.test")
    initech = Controller.objects.create(slug="initech", name="Initech", email="dpo@initech.test")

    with time_machine.travel(at(MARCH_2), tick=False) as clock:
        members = [make_member(writers, name=name) for name in NAMES]
        for member in members:
            make_mandate(member)
        leaver = make_member(writers, name="Left Early")
        leaver.left_at = at(MARCH_2)
        leaver.save()
        painter_members = [make_member(painters, name=f"Painter {n}", email=f"p{n}@p.test") for n in "abc"]

        r = [dispatched(member, acme).pk for member in members[:7]]
        g = [dispatched(member, globex).pk for member in members[:3]]
        engine.request_approve(request_id=make_request(members[0], initech).pk, actor=ROBOT)

        clock.move_to(at(datetime.date(2026, 3, 20)))
        engine.request_extend(request_id=r[3], months=1, reason="Many requests at once.", actor=ROBOT)

        clock.move_to(at(datetime.date(2026, 4, 1)))
        for pk, day in ((r[0], 12), (r[1], 22), (r[2], 30)):
            engine.request_fulfil(request_id=pk, answered_on=datetime.date(2026, 3, day), actor=ROBOT)
        engine.request_refuse(
            request_id=r[5],
            ground=RefusalGround.LEGAL_PRIVILEGE,
            reasons="Legal privilege over Ada's file.",
            answered_on=datetime.date(2026, 3, 9),
            actor=ROBOT,
        )
        for pk in g:
            engine.request_fulfil(request_id=pk, answered_on=datetime.date(2026, 3, 20), actor=ROBOT)

        clock.move_to(at(datetime.date(2026, 4, 3)))
        assert sweep.deadlines_sweep() == 2  # r5 and r7; r4 was extended

        clock.move_to(at(datetime.date(2026, 4, 20)))
        engine.request_fulfil(request_id=r[4], answered_on=datetime.date(2026, 4, 15), actor=ROBOT)
        engine.request_fulfil(request_id=r[3], answered_on=datetime.date(2026, 4, 20), actor=ROBOT)
        complaints.request_complain_to_controller(request_id=r[6], actor=ROBOT)
        sent_complaint(
            kind=Complaint.Kind.CONTROLLER,
            community=writers,
            controller=acme,
            requests=[r[6]],
            sent_on=datetime.date(2026, 4, 20),
        )
        Complaint.objects.create(
            kind=Complaint.Kind.CONTROLLER, community=writers, controller=acme, grounds="d"
        )

        clock.move_to(at(datetime.date(2026, 5, 28)))
        engine.request_escalate_to_ico(request_id=r[6], actor=ROBOT, case_reference="IC-123-ABCD")
        sent_complaint(
            kind=Complaint.Kind.ICO,
            community=writers,
            controller=acme,
            requests=[r[6]],
            sent_on=datetime.date(2026, 5, 28),
        )

        clock.move_to(at(datetime.date(2026, 6, 1)))
        yield {"acme": acme, "globex": globex, "members": members + [leaver] + painter_members}


def _member_traces(members) -> list[str]:
    traces = []
    for member in members:
        traces += [member.full_name, member.reference, member.user.email]
        traces += list(member.requests.values_list("reference", flat=True))
        traces += list(member.mandates.values_list("reference", flat=True))
    return traces + ["Ada's file", "IC-123-ABCD"]


def test_sanity_of_the_fixture_dates(world):
    acme_requests = world["acme"].requests.order_by("pk")
    assert {r.due_on for r in acme_requests if not r.extension_months} == {datetime.date(2026, 4, 2)}
    assert acme_requests.get(extension_months=1).due_on == datetime.date(2026, 5, 5)


def test_controller_record_has_every_hand_computed_figure(world, client):
    response = client.get(reverse("api-register-controller", args=["acme"]))

    assert response.status_code == 200
    assert response.json() == {
        "suppression_threshold": 5,
        "note": response.json()["note"],
        "slug": "acme",
        "name": "Acme Data Ltd",
        "requests_received": 7,
        "answered": 6,
        "answered_on_time": 5,
        "answered_late": 1,
        "unanswered_after_deadline": 1,
        "on_time_percent": 71,
        "median_days_to_answer": 24.0,
        "extensions": 1,
        "refusals": 1,
        "refusals_by_ground": [
            {
                "ground": "legal_privilege",
                "label": "Legal professional privilege (DPA 2018 Sch 2 para 19)",
                "count": 1,
            }
        ],
        "complaints_to_controller": 1,
        "complaints_to_ico": 1,
        "requests_escalated_to_ico": 1,
    }


def test_a_controller_with_fewer_than_5_requests_has_every_figure_withheld(world, client):
    data = client.get(reverse("api-register-controller", args=["globex"])).json()
    figures = {key: value for key, value in data.items() if key not in ("slug", "name", "note")}
    assert figures == {
        "suppression_threshold": 5,
        "requests_received": None,
        "answered": None,
        "answered_on_time": None,
        "answered_late": None,
        "unanswered_after_deadline": None,
        "on_time_percent": None,
        "median_days_to_answer": None,
        "extensions": None,
        "refusals": None,
        "refusals_by_ground": None,
        "complaints_to_controller": None,
        "complaints_to_ico": None,
        "requests_escalated_to_ico": None,
    }

    page = client.get(reverse("register-controller", args=["globex"])).content.decode()
    assert page.count("fewer than 5") >= 10
    assert not re.search(r"<dd[^>]*>\s*3\s*</dd>", page)  # its 3 requests are nowhere
    assert "refusals.svg" not in page
    assert client.get(reverse("register-chart-refusals", args=["globex"])).status_code == 404


def test_register_index_lists_communities_and_controllers_that_received_requests(world, client):
    data = client.get(reverse("api-register")).json()

    writers_rights = [
        {"code": "access", "label": "Access (Art 15)"},
        {"code": "erasure", "label": "Erasure (Art 17)"},
    ]
    assert data["communities"] == [
        {
            "slug": "painters",
            "name": "Painters",
            "purpose": "Art and data.",
            "rights": [{"code": "objection", "label": "Objection (Art 21)"}],
            "members": None,
            "contact_email": "hi@painters.test",
            "art80_record": None,  # no Art 80(1) record: it represents nobody before the ICO
        },
        {
            "slug": "writers",
            "name": "Writers' Collective",
            "purpose": "We ask AI developers about our work.",
            "rights": writers_rights,
            "members": 10,
            "contact_email": "hello@writers.test",
            "art80_record": None,  # no Art 80(1) record: it represents nobody before the ICO
        },
    ]
    assert data["controllers"] == [
        {
            "slug": "acme",
            "name": "Acme Data Ltd",
            "requests_received": 7,
            "answered": 6,
            "answered_on_time": 5,
            "answered_late": 1,
            "unanswered_after_deadline": 1,
            "on_time_percent": 71,
            "median_days_to_answer": 24.0,
        },
        {
            "slug": "globex",
            "name": "Globex",
            "requests_received": None,
            "answered": None,
            "answered_on_time": None,
            "answered_late": None,
            "unanswered_after_deadline": None,
            "on_time_percent": None,
            "median_days_to_answer": None,
        },
    ]
    assert data["outcomes_chart"] == [
        {
            "slug": "acme",
            "name": "Acme Data Ltd",
            "answered_on_time": 5,
            "answered_late": 1,
            "unanswered_after_deadline": 1,
        },
    ]
    assert (data["suppression_threshold"], data["members_rounded_to"]) == (5, 5)


def test_the_pages_show_the_same_data_as_the_json(world, client):
    index = client.get(reverse("register"))
    record = client.get(reverse("register-controller", args=["acme"]))

    assert json.loads(json.dumps(index.context["data"])) == client.get(reverse("api-register")).json()
    assert json.loads(json.dumps(record.context["data"])) == (
        client.get(reverse("api-register-controller", args=["acme"])).json()
    )


def test_the_pages_show_the_figures_and_link_each_controller(world, client):
    index = client.get(reverse("register")).content.decode()
    assert 'href="/register/controllers/acme/"' in index
    assert 'href="/register/controllers/globex/"' in index
    assert "Initech" not in index  # its only request never reached it
    assert "71%" in index and ">24<" in index
    assert "about 10" in index  # Writers' 8 members, rounded
    assert 'src="/register/charts/outcomes.svg"' in index

    record = client.get(reverse("register-controller", args=["acme"])).content.decode()
    for shown in (
        "71%",
        "5 on time, 1 answered late, 1 with no answer after the deadline",
        "Legal professional privilege (DPA 2018 Sch 2 para 19)",
        'src="/register/controllers/acme/refusals.svg"',
    ):
        assert shown in record
    assert client.get(reverse("register-controller", args=["initech"])).status_code == 404
    assert client.get(reverse("api-register-controller", args=["initech"])).status_code == 404


def test_charts_are_svg_from_our_own_url_without_scripts(world, client):
    for url in (reverse("register-chart-outcomes"), reverse("register-chart-refusals", args=["acme"])):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
        svg = response.content.decode()
        assert "<svg" in svg and "<script" not in svg
        assert not re.search(r"(?:src|href)=\"https?://", svg)

    outcomes = client.get(reverse("register-chart-outcomes")).content.decode()
    assert "Acme Data Ltd" in outcomes and "Globex" not in outcomes
    assert (
        "Legal professional privilege"
        in client.get(reverse("register-chart-refusals", args=["acme"])).content.decode()
    )


def test_the_chart_key_is_html_text_beside_the_image_and_not_svg_text_it_could_overflow(
    world, client, settings
):
    # SVG text never wraps: a key drawn in the chart was cut off at the image's edge by a long name.
    outcomes = client.get(reverse("register-chart-outcomes")).content.decode()
    index = client.get(reverse("register")).content.decode()
    figure = index[index.index('<figure class="register-chart">') : index.index("</figure>")]
    for label, _figure, key in register_views.OUTCOME_SERIES:
        assert label not in outcomes
        assert f"register-legend__swatch--{key}" in figure and label in figure
    colours = register_views.CHART_STYLE.colors
    css = (settings.BASE_DIR / "static" / "css" / "register.css").read_text()
    for (_label, _figure, key), colour in zip(register_views.OUTCOME_SERIES, colours, strict=False):
        assert re.search(rf"\.register-legend__swatch--{key} \{{\s*background: {colour};", css), key


def test_no_member_name_or_reference_appears_anywhere(world, client):
    urls = [
        reverse("register"),
        reverse("register-chart-outcomes"),
        reverse("api-register"),
        *(
            reverse(name, args=[slug])
            for slug in ("acme", "globex")
            for name in ("register-controller", "api-register-controller")
        ),
        reverse("register-chart-refusals", args=["acme"]),
    ]
    published = "\n".join(client.get(url).content.decode() for url in urls)
    published += "\n" + json.dumps(client.get(reverse("api-register")).json(), ensure_ascii=False)

    traces = _member_traces(world["members"])
    assert len(traces) > 40
    assert [trace for trace in traces if trace in published] == []


def test_the_register_costs_a_fixed_number_of_queries(world, client, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        client.get(reverse("register"))
    with django_assert_max_num_queries(8):
        client.get(reverse("register-controller", args=["acme"]))
