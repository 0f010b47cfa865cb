"""node.bands on a search without a date of birth: only a home that agrees, read as the house on its street."""

from __future__ import annotations

import pytest

from node import bands
from node import comparisons as cmp
from node.comparisons import NULL
from node.normalise import address_key


def _levels(searched: str, held: str) -> tuple[int, ...]:
    """Both names agree, no date of birth, sex or postcode: the address alone carries the home."""
    return (0, 0, NULL, NULL, NULL, cmp.address_level(address_key(searched), address_key(held)), NULL)


@pytest.mark.parametrize(
    ("searched", "held", "found"),
    [
        ("12 Oak Road, Leeds", "12 Oak Road", True),
        ("12 Oak Road", "12 Oak Road, Headingley, Leeds", True),
        ("12 Oak Road", "Flat 2, 12 Oak Road", True),
        ("2/12 Oak Road", "12 Oak Road, Leeds", True),
        ("12 Oak Road, York", "12 Oak Road, Leeds", False),
        ("Flat 3, 12 Oak Road", "Flat 2, 12 Oak Road", False),
        ("12b Oak Road", "12a Oak Road", False),
        ("14 Oak Road", "12 Oak Road, Leeds", False),
        ("12 Elm Road", "12 Oak Road, Leeds", False),
        ("12 Road, Leeds", "12 Oak Road, Leeds", False),
    ],
)
def test_a_search_without_a_date_has_evidence_only_at_the_home(searched: str, held: str, found: bool) -> None:
    lv = _levels(searched, held)
    assert bands.home_agrees(lv) is found
    assert bands.has_evidence(lv) is found
    assert bands.band(lv, 1.0, (0.9, 0.5), capped=False, alone=True) == ("possible" if found else "")
