"""The legal grounds a controller may give for not acting, at the level of the law, and for which rights.

One rule for every surface (portal, API, CSV, DRP, the admin): a ground is accepted only for the rights it
can apply to (`ground_problem`), and forms offer only those (`grounds_for`), with nothing preselected. Each
ground carries what the controller must show for it, in the words our complaints quote (RULES.md (d)).

Sources: UK GDPR Art 11(2), 12(5), 15(4), 17(3), 20(1), 21(1)-(3); DPA 2018 Schedule 2 paras 2, 16, 19, 22,
23 and 24 (legislation.gov.uk). A direct-marketing objection is absolute (Art 21(2)-(3)): no ground answers
it, so "compelling legitimate grounds" is offered only against an Art 21(1) objection, and our objection
letters say which part is which.
"""

from __future__ import annotations

from dataclasses import dataclass

from communities.models import Right
from requests_engine.models import DataRightsRequest, RefusalGround

G = RefusalGround
ALL_RIGHTS = frozenset(Right.values)
# Schedule 2 restrictions modify the Art 13-21 rights as each paragraph lists them; these apply to access.
ACCESS_LIKE = frozenset({Right.ACCESS, Right.PORTABILITY})


@dataclass(frozen=True)
class Ground:
    code: str
    rights: frozenset[str]
    must_show: str  # what the controller bears the burden of showing, with the citation


GROUNDS: dict[str, Ground] = {
    g.code: g
    for g in (
        Ground(
            G.MANIFESTLY_UNFOUNDED,
            ALL_RIGHTS,
            "that the request is manifestly unfounded; the burden of demonstrating it is the controller's "
            "(Art 12(5) UK GDPR), and a request made through a representative is not unfounded for that reason "
            "(ICO guidance on bulk requests)",
        ),
        Ground(
            G.MANIFESTLY_EXCESSIVE,
            ALL_RIGHTS,
            "that the request is manifestly excessive, in particular because it repeats an earlier one; the "
            "burden of demonstrating it is the controller's (Art 12(5) UK GDPR)",
        ),
        Ground(
            G.ART11_2,
            ALL_RIGHTS,
            "that it is not in a position to identify the member even with the identifiers given, and that it "
            "has told the member so; the member may provide more (Art 11(2) UK GDPR)",
        ),
        Ground(
            G.CRIME_TAXATION,
            ACCESS_LIKE | {Right.ERASURE, Right.OBJECTION},
            "that answering would be likely to prejudice the prevention or detection of crime or the "
            "assessment or collection of tax, case by case (DPA 2018 Sch 2 para 2)",
        ),
        Ground(
            G.THIRD_PARTY_DATA,
            frozenset({Right.ACCESS}),
            "that the information would identify another person who has not consented and that withholding it "
            "is reasonable; it must still give what it can without identifying them (DPA 2018 Sch 2 paras "
            "16-17; Art 15(4) UK GDPR)",
        ),
        Ground(
            G.LEGAL_PRIVILEGE,
            ACCESS_LIKE,
            "that the information is subject to legal professional privilege (DPA 2018 Sch 2 para 19)",
        ),
        Ground(
            G.MANAGEMENT_FORECASTS,
            ACCESS_LIKE,
            "that the data is processed for management forecasting or planning and that disclosure would "
            "prejudice the conduct of the business (DPA 2018 Sch 2 para 22)",
        ),
        Ground(
            G.NEGOTIATIONS,
            ACCESS_LIKE,
            "that the data records its intentions in negotiations with the member and that disclosure would "
            "prejudice those negotiations (DPA 2018 Sch 2 para 23)",
        ),
        Ground(
            G.CONFIDENTIAL_REFERENCES,
            ACCESS_LIKE,
            "that the data is a reference given in confidence for the member's education, employment or "
            "appointment (DPA 2018 Sch 2 para 24)",
        ),
        Ground(
            G.ART17_3,
            frozenset({Right.ERASURE}),
            "which exception in Art 17(3) UK GDPR applies (freedom of expression, a legal obligation, public "
            "health, archiving or research, legal claims) and why it makes the processing necessary",
        ),
        Ground(
            G.ART20_NOT_APPLICABLE,
            frozenset({Right.PORTABILITY}),
            "that the conditions of Art 20(1) UK GDPR are not met: the data was not provided by the member, or "
            "the processing rests on neither consent nor a contract, or is not automated",
        ),
        Ground(
            G.ART21_COMPELLING_GROUNDS,
            frozenset({Right.OBJECTION}),
            "compelling legitimate grounds for the processing which override the member's interests, rights and "
            "freedoms, or the establishment, exercise or defence of legal claims (Art 21(1) UK GDPR); this "
            "cannot answer an objection to direct marketing, which is absolute (Art 21(2)-(3))",
        ),
        Ground(
            G.IDENTITY_NOT_VERIFIED,
            ALL_RIGHTS,
            "that it has reasonable doubts about the member's identity and asked for what it needed, and that "
            "the answer did not resolve them (Art 12(6) UK GDPR)",
        ),
        Ground(
            G.AUTHORITY_NOT_SHOWN,
            ALL_RIGHTS,
            "why the sealed authority document, checkable at its link, does not show the community's authority "
            "to act for the member (ICO guidance on requests made on behalf of others)",
        ),
        Ground(
            G.OTHER,
            ALL_RIGHTS,
            "the legal basis for not acting, which the reasons it gave must name (Art 12(4) UK GDPR)",
        ),
    )
}


# Art 21(3) UK GDPR: where the member objects to direct marketing, the data shall no longer be processed for
# it. Compelling grounds answer only an Art 21(1) objection; the other grounds (the request itself, identity,
# authority) still can.
NOT_AGAINST_DIRECT_MARKETING = frozenset({G.ART21_COMPELLING_GROUNDS})


def grounds_for(right: str, *, direct_marketing: bool = False) -> list[tuple[str, str]]:
    """(code, label) of the grounds a controller may give for this right, in the order forms offer them;
    `direct_marketing` for an objection to direct marketing."""
    return [
        (code, G(code).label)
        for code, ground in GROUNDS.items()
        if right in ground.rights and not (direct_marketing and code in NOT_AGAINST_DIRECT_MARKETING)
    ]


def ground_problem(ground: str, right: str, *, direct_marketing: bool = False) -> str:
    """Why this ground cannot answer a request for this right, or ""."""
    if ground not in GROUNDS:
        return f"Unknown legal ground '{ground}': use one of {', '.join(GROUNDS)}."
    allowed = ", ".join(code for code, _ in grounds_for(right, direct_marketing=direct_marketing))
    if right not in GROUNDS[ground].rights:
        return f"“{G(ground).label}” does not apply to {Right(right).label} requests: use one of {allowed}."
    if direct_marketing and ground in NOT_AGAINST_DIRECT_MARKETING:
        return (
            f"“{G(ground).label}” cannot answer an objection to direct marketing, which is absolute "
            f"(Art 21(2)-(3) UK GDPR): use one of {allowed}."
        )
    return ""


def request_grounds(request: DataRightsRequest) -> list[tuple[str, str]]:
    """The grounds a controller may give for this request."""
    return grounds_for(request.right, direct_marketing=request.objects_to_direct_marketing)


def request_ground_problem(ground: str, request: DataRightsRequest) -> str:
    """Why this ground cannot answer this request, or ""."""
    return ground_problem(ground, request.right, direct_marketing=request.objects_to_direct_marketing)


def what_must_be_shown(ground: str) -> str:
    """The sentence a complaint quotes: what the controller had to show for the ground it gave."""
    found = GROUNDS.get(ground)
    return f"For this ground the controller must show {found.must_show}." if found else ""
