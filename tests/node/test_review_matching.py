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


def test_a_town_left_out_never_makes_a_stranger_in_another_town_a_match_against_the_searched_postcode():
    # "12 Oak Road" agrees with "12 Oak Road, York" (a town on one side only). With a Leeds postcode
    # searched, York's 12 Oak Road is another home: Jordan Smith born that day there is no match for
    # Jordan Mensah (a different family name needs the same home), and his brother is no sibling profile.
    engine = _engine(
        _rec("U", "Jordan", "Mensah", "2011-08-17", sex="M", address="12 Oak Road, Leeds", postcode="LS6 2AB"),
        _rec("S", "Jordan", "Smith", "2011-08-17", sex="M", address="12 Oak Road, York", postcode="YO1 7HH"),
        _rec("T", "Kwame", "Mensah", "2011-08-17", sex="M", address="12 Oak Road, York", postcode="YO1 7HH"),
    )
    searched = {"given_name": "Jordan", "family_name": "Mensah", "sex": "M", "postcode": "LS6 2AB"}
    found = _bands(engine, **searched, date_of_birth="2011-08-17", address="12 Oak Road")
    assert found == {"U": "match", "S": "possible"}
    # Without a date of birth, the searched postcode's home only: not the child of that name in York.
    engine = _engine(
        _rec("Y", "Jordan", "Mensah", "2011-08-17", address="12 Oak Road, York", postcode="YO1 7HH"),
        _rec("F", "Jordan", "Mensah", "2012-01-01", address="Flat 7, 12 Oak Road", postcode="LS6 2AB"),
    )
    assert _bands(engine, **searched, address="12 Oak Road") == {"F": "possible"}


@pytest.mark.xfail(
    strict=True,
    reason="a flat in a named block with no house number ('Flat 12, Oak House, Oak Road') has no house since "
    "feb9624 (a flat's number is never the house's): a search without a date of birth by it is refused and "
    "the record has no home keys; before, 12 was its house number. Taking the flat's number when no house "
    "number is left is a policy call ('Flat 1, Leeds' would then be a home again) left to the lead",
)
def test_a_flat_in_a_named_block_without_a_house_number_is_still_a_home_to_search_by():
    assert home_given(Subject(given_name="Jordan", family_name="Mensah", address="Flat 12, Oak House, Oak Road"))


def test_a_house_number_written_with_a_leading_zero_is_still_the_home_without_a_date():
    # "012 Oak Road" is house 12 (house_number says so): before feb9624 it agreed with "12 Oak Road";
    # since, the number as written differed ('012' beside '12' read as 12b beside 12a).
    engine = _engine(_rec("C", "Jordan", "Mensah", "2011-08-17", address="12 Oak Road"))
    for address in ("012 Oak Road", "Flat 2, 012 Oak Road"):
        assert _bands(engine, given_name="Jordan", family_name="Mensah", address=address) == {"C": "possible"}
    assert _bands(engine, given_name="Jordan", family_name="Mensah", address="012a Oak Road") == {}


@pytest.mark.parametrize(
    ("held", "searched"),
    [
        ("Flat 3, 12 Oak Road", "Flat 2, 12 Oak Road"),
        ("3/12 Oak Road", "2/12 Oak Road"),
        ("Apartment 3, 12 Oak Road", "Flat 2, 12 Oak Road"),
        ("12 Oak Road, Flat 3", "Unit 2 12 Oak Road"),
        ("Room 3, 12 Oak Road", "Room 2, 12 Oak Road"),
        ("First Floor Flat, 12 Oak Road", "Ground Floor Flat, 12 Oak Road"),
        ("12b Oak Road", "12a Oak Road"),
    ],
)
def test_another_home_in_the_same_house_is_never_reached_without_a_date(held, searched):
    engine = _engine(_rec("C", "Jordan", "Mensah", "2011-08-17", address=held))
    assert _bands(engine, given_name="Jordan", family_name="Mensah", address=searched) == {}
