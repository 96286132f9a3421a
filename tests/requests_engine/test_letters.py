"""The letterhead and the reply address each have one home, in letters.py."""

import datetime as dt

import pytest

from communities.models import Community
from requests_engine import letters


def test_a_reply_address_reads_back_as_the_token_it_was_built_from(settings) -> None:
    settings.REPLY_DOMAIN = "replies.community.test"
    address = letters.reply_address_of("Tok_en-123456")
    assert address == "reply+Tok_en-123456@replies.community.test"
    assert letters.reply_token_in(address) == "Tok_en-123456"
    assert letters.reply_token_in(f"  {address.upper().replace('TOK_EN', 'Tok_en')} ") == "Tok_en-123456"


@pytest.mark.parametrize(
    "address",
    [
        "hello@community.test",
        "reply@community.test",
        "reply+short@community.test",
        "noreply+Token12345@x.test",
    ],
)
def test_other_addresses_carry_no_reply_token(address: str) -> None:
    assert letters.reply_token_in(address) is None


def test_the_letterhead_names_the_legal_entity_and_its_agent_when_given() -> None:
    plain = Community(name="Writers")
    assert letters.letterhead(plain) == {
        "sender_name": "Writers",
        "contact_name": "The coordinators of Writers",
    }
    formal = Community(name="Writers", legal_name="Writers' Data Community CIC", agent_name="Nia Evans")
    assert letters.letterhead(formal) == {
        "sender_name": "Writers' Data Community CIC",
        "contact_name": "Nia Evans",
    }


def test_long_dates_have_no_leading_zero() -> None:
    assert letters.long_date(dt.date(2026, 4, 9)) == "9 April 2026"
