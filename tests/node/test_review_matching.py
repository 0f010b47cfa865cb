"""A hostile review of the evening's matching changes (the address read as a home, the scorer's
shortcuts): each test is a child in another home reached, a child missed, or a crash on odd input."""

from __future__ import annotations

import pytest

from core.addresses import home_of, house_number, read_home, street_word
from core.subject import Subject, home_given
from node.matching import MatchEngine
from tests.node.test_review_attacks import _bands, _engine, _rec


@pytest.mark.parametrize("other", ["3, 12 Oak Road", "3 12 Oak Road"])
def test_another_flat_written_without_the_word_flat_is_not_the_home_without_a_date(other):
    # "2, 12 Oak Road" and "3, 12 Oak Road" are two flats in house 12, as "Flat 2" and "Flat 3" are: a
    # name with the one flat's address and no date of birth must not find a child living in the other.
    engine = _engine(_rec("C", "Jordan", "Mensah", "2011-08-17", address=other))
    assert _bands(engine, given_name="Jordan", family_name="Mensah", address="2, 12 Oak Road") == {}
    # The flat left out of the search is still that house (as for "Flat 3, 12 Oak Road").
    assert _bands(engine, given_name="Jordan", family_name="Mensah", address="12 Oak Road") == {"C": "possible"}


def test_a_named_flat_before_a_comma_keeps_the_house_number():
    # "Ground Floor Flat, 12 Oak Road": 12 is the house's number, not the flat's. Read as a flat, the
    # address had no house at all: a search without a date of birth by it was refused, and the child
    # held there lost every home key.
    for address in ("Ground Floor Flat, 12 Oak Road", "Basement Flat, 12 Oak Road", "Top Flat, 12a Oak Road"):
        assert house_number(address) == "12", address
        assert street_word(address) == "oak", address
        assert home_given(Subject(given_name="Jordan", family_name="Mensah", address=address)), address
    assert read_home("Flat 2, 12 Oak Road").flat == "2"  # a flat's number after its word still is the flat's
    engine = _engine(_rec("C", "Jordan", "Mensah", "2011-08-17", address="Ground Floor Flat, 12 Oak Road"))
    found = _bands(engine, given_name="Jordan", family_name="Mensah", address="Ground Floor Flat, 12 Oak Road")
    assert found == {"C": "possible"}


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0",
        "12-",
        "/12",
        "-12",
        "12/",
        "١٢ Oak Road",
        "１２ Oak Road",
        "Ⅻ Oak Road",
        "x" * 10_000,
        "1/" * 3000,
        "flat " * 2000,
        "1-" + "9" * 5000 + " Oak Road",
        "0-" + "0" * 5000 + "1 Oak Road",
    ],
)
def test_odd_addresses_are_read_without_a_crash_on_both_sides(address):
    read_home(address)
    home_of.cache_clear()
    engine = _engine(_rec("C", "Jordan", "Mensah", "2011-08-17", address=address))
    assert isinstance(engine, MatchEngine)
    _bands(engine, given_name="Jordan", family_name="Mensah", date_of_birth="2011-08-17", address=address)


def test_a_held_record_with_a_huge_range_does_not_stop_the_build():
    # A range's two numbers were compared as ints: past 4300 digits Python refuses to convert them.
    records = [_rec("C", "Jordan", "Mensah", "2011-08-17", address="1-" + "9" * 5000 + " Oak Road")]
    assert isinstance(_engine(*records), MatchEngine)
