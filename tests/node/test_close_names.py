"""comparisons.given_close / family_close answer exactly what bands.close(given_level / family_level) does.

Matching's close-name check drops a candidate none of whose names is close before scoring it, so a
close-only comparison that said "not close" where the full level says "close" would lose a child.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.nicknames import default_variants
from node import bands
from node import comparisons as cmp

VARIANTS = default_variants()
NAMES = ["bob", "robert", "rob", "bobby", "ned", "ted", "edward", "mia", "mila", "ryan", "rya", "ryn", "li", "lee"]
# Short and long names, one-letter names, near-misses of one another: every branch of _spelling_level.
name = st.one_of(st.sampled_from(NAMES), st.text(alphabet="abeilnorty", min_size=0, max_size=9))
parts = st.lists(name.filter(bool), min_size=0, max_size=3).map(tuple)


@settings(max_examples=3000, deadline=None)
@given(name, name)
def test_a_given_name_is_close_exactly_when_its_level_is(a: str, b: str) -> None:
    assert cmp.given_close(a, b, VARIANTS) == bands.close(cmp.given_level(a, (b,), VARIANTS))


@settings(max_examples=3000, deadline=None)
@given(parts, parts)
def test_a_family_name_is_close_exactly_when_its_level_is(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    assert cmp.family_close(a, b) == bands.close(cmp.family_level(a, (b,)))


def test_the_cases_that_motivated_the_levels() -> None:
    assert cmp.given_close("robert", "bob", VARIANTS)  # a variant
    assert not cmp.given_close("mia", "mila", VARIANTS)  # a slip in a short given name is only "similar"
    assert cmp.family_close(("ryan",), ("ryn",))  # a short family name with a letter dropped
    assert cmp.family_close(("smith", "jones"), ("jones",))  # one part of a double-barrelled name
    assert not cmp.given_close("j", "james", VARIANTS)  # an initial is never close


@settings(max_examples=1500, deadline=None)
@given(st.lists(name, max_size=4), name)
def test_a_name_is_close_to_a_query_exactly_when_close_to_one_of_its_names(probes: list[str], b: str) -> None:
    close = cmp.CloseToAny(probes, [], VARIANTS)
    assert close.given(b) == any(cmp.given_close(p, b, VARIANTS) for p in probes)


@settings(max_examples=1500, deadline=None)
@given(st.lists(parts, max_size=4), parts)
def test_a_family_name_is_close_to_a_query_exactly_when_close_to_one_of_its_names(
    probes: list[tuple[str, ...]], b: tuple[str, ...]
) -> None:
    close = cmp.CloseToAny([], probes, VARIANTS)
    assert close.family(b) == any(cmp.family_close(p, b) for p in probes)
