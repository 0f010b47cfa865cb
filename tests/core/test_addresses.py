"""How an address is read as a home: the house number on its street, the flat apart, the town aside."""

from __future__ import annotations

import pytest

from core.addresses import house_number, read_home, street_word
from core.subject import Subject, home_given


@pytest.mark.parametrize(
    ("address", "house", "flat", "street"),
    [
        ("12 Oak Road", "12", "", "oak"),
        # A flat or unit number is not the house number: the number just before the street is.
        ("Flat 2, 12 Oak Road", "12", "2", "oak"),
        ("Flat 2 12 Oak Road", "12", "2", "oak"),
        ("2/12 Oak Road", "12", "2", "oak"),
        ("Unit B, 7 High St", "7", "b", "high"),
        ("12 smith street flat 3 kalinga", "12", "3", "smith"),
        ("1234 n 30th st apt 5 anytown", "1234", "5", "30th"),
        # A letter after the number keys as the number; a range keys as its first number.
        ("12a Oak Road", "12", "", "oak"),
        ("12-14 Oak Road", "12", "", "oak"),
        ("12 The Crescent, Leeds", "12", "", "crescent"),
        # A flat in a named house has no house number; a house's name before the number is no street.
        ("Apartment 3, Mill House, Oak Road", "", "3", "mill"),
        ("Mill Cottage, 5 Oak Road", "5", "", "oak"),
        # Filler alone: no street (and "Flat 1" no house number either).
        ("Flat 1", "", "1", ""),
        ("Flat 1 Road", "", "1", ""),
        ("1 Road", "1", "", ""),
        ("", "", "", ""),
    ],
)
def test_the_house_number_is_the_one_on_the_street(address: str, house: str, flat: str, street: str) -> None:
    home = read_home(address)
    assert (home.house, home.flat, home.word) == (house, flat, street)
    assert (house_number(address), street_word(address)) == (house, street)


def test_the_street_ends_at_its_road_or_a_comma_and_the_rest_is_where_it_is() -> None:
    leeds = read_home("Flat 2, 12 Oak Road, Headingley, Leeds")
    assert (leeds.number, leeds.street, leeds.extra) == ("12", {"oak"}, {"headingley", "leeds"})
    assert read_home("12 Oak Road Leeds").street == {"oak"}
    assert read_home("12 Oak, Leeds").street == {"oak"}
    # No road and no comma: the street runs to the end, so nothing is taken for a town.
    assert read_home("12 Oak Leeds").street == {"oak", "leeds"}
    assert read_home("12a Oak Road").number == "12a" and read_home("12-14 Oak Road").number == "12-14"


@pytest.mark.parametrize(
    ("address", "given"),
    [
        ("Flat 2, 12 Oak Road", True),
        ("12 Oak Road, Leeds", True),
        ("Unit 3, 12 Oak Road", True),
        ("Apartment 3, Mill House, Oak Road", False),  # no house number: only a flat's
        ("Flat 1", False),
        ("Flat 1 Road", False),
        ("1 Road", False),
    ],
)
def test_a_search_without_a_date_of_birth_needs_a_house_number_on_a_street(address: str, given: bool) -> None:
    assert home_given(Subject(given_name="Jordan", family_name="Mensah", address=address)) is given
