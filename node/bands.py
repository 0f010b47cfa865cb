"""The band rules: which compared candidates may be a ``match``, a ``possible``, or nothing at all.

Pure functions over a candidate's comparison levels (:mod:`node.comparisons`), applied after the
score, so that no learnt weight can override them:

- **evidence about the named child, or nothing**: every band needs a family or given name that
  agrees at least as a close spelling (not merely "sounds alike"); an NHS number agreeing needs the
  family name or the date of birth to agree too (a family name "x" finds nobody); a record whose
  given name differs, or whose date of birth is more than one keying slip away or not searched, needs
  the same home. A date of birth and a postcode never return anyone alone;
- **nobody vanishes**: three of given name, family name, date of birth (or one keying slip) and home
  agreeing make a ``possible`` whatever the score — the twin's profile (family name, birthday and
  home agree, given name differs), a date of birth keyed wholly wrong, a child who changed surname;
- **``match`` stays strict, never a sibling or twin**: the given name, date of birth and sex are
  what tell twins and siblings apart, so each must agree well — or the NHS number must.

They never look at values, only at levels, and they never log.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.comparisons import FAMILY, GIVEN, NULL, dob_slip

GIVEN_AT, FAMILY_AT, DOB_AT, SEX_AT, POSTCODE_AT, ADDRESS_AT, NHS_AT = range(7)
"""Positions of the fields in a candidate's tuple of levels (the order of comparisons.FIELDS)."""
CLOSE = 2
"""Name levels up to here (agrees, variant or double-barrelled part, close spelling) are evidence."""

Levels = Sequence[int]


def close(level: int) -> bool:
    return level != NULL and level <= CLOSE


def same_home(lv: Levels) -> bool:
    """The same full postcode or the same address, or an address that partly agrees in the same district,
    a postcode one keying slip away or with no postcode to compare (a keying slip in each: "23 ramsay
    place mirani gar but")."""
    near = lv[POSTCODE_AT] in (1, 2, 3, NULL)
    return lv[POSTCODE_AT] == 0 or lv[ADDRESS_AT] == 0 or (lv[ADDRESS_AT] == 1 and near)


def home_agrees(lv: Levels) -> bool:
    """The same full postcode or an address that agrees, never one that only partly does."""
    return lv[POSTCODE_AT] == 0 or lv[ADDRESS_AT] == 0


def given_differs(lv: Levels) -> bool:
    return lv[GIVEN_AT] == GIVEN.disagree


def has_evidence(lv: Levels) -> bool:
    """Does the candidate agree with the searched child on something that names them?"""
    if lv[NHS_AT] == 0:
        return close(lv[FAMILY_AT]) or lv[DOB_AT] == 0
    if not (close(lv[GIVEN_AT]) or close(lv[FAMILY_AT])):
        return False
    if not dated_or_at_home(lv):
        return False
    if given_differs(lv):  # a sibling's profile: only with the home and the family name agreeing
        return close(lv[FAMILY_AT]) and same_home(lv) and lv[DOB_AT] != NULL and dob_slip(lv[DOB_AT])
    return True


def dated_or_at_home(lv: Levels) -> bool:
    """What :func:`has_evidence` asks of a candidate's date of birth and home, whatever its names: read
    alone first by the scorer, so that a candidate it rules out is not compared name by name."""
    if lv[DOB_AT] == NULL:
        # A search without a date of birth (names and home, core.subject) finds only at that home:
        # else a name alone would list every child of that name the authority holds. Only a home that
        # agrees: "Flat 1 Road" partly agrees with every flat 1 on a road, which would locate the child.
        return home_agrees(lv)
    # A name alone, with any date of birth: one name swept over many dates would find the same
    # children every time, and say which authorities hold a child of that name.
    return dob_slip(lv[DOB_AT]) or same_home(lv)


def strong_partial(lv: Levels) -> bool:
    """Three of given name, family name, date of birth and home agree: a ``possible`` whatever the score."""
    if lv[NHS_AT] == 1:
        return False
    agreeing = (
        close(lv[GIVEN_AT]),
        close(lv[FAMILY_AT]),
        lv[DOB_AT] != NULL and dob_slip(lv[DOB_AT]),
        same_home(lv),
    )
    return sum(agreeing) >= 3


def sex_keyed_wrong(lv: Levels) -> bool:
    """A different sex where given name, family name and date of birth agree exactly, at the same home.

    Twins of different sex never share a given name, so that is the one child with its sex keyed the
    other way, not a twin: a ``match`` may stand. A given name that is only a variant or a close
    spelling ("Sam" for Samuel and Samantha) is not enough, nor is a match away from the home.
    """
    return lv[GIVEN_AT] == 0 and lv[FAMILY_AT] == 0 and lv[DOB_AT] == 0 and same_home(lv)


def corroborated(lv: Levels, household_alone: bool, rival: bool = False) -> bool:
    """Deterministic limits on a ``match``, whatever the weights say.

    Twins and siblings share a family name, an address and sometimes a birthday: the given name,
    date of birth and sex are what tell them apart, so each must agree well, or the NHS number must
    (a sex keyed the other way is borne only when the rest agrees exactly: :func:`sex_keyed_wrong`).
    A different family name needs the same home too, and a date of birth more than one keying slip
    away (a digit, day and month swapped, two digits transposed) is never a ``match``.
    """
    if lv[NHS_AT] == 1:
        return False  # different NHS numbers
    if lv[NHS_AT] == 0:
        return lv[FAMILY_AT] != NULL and lv[DOB_AT] != NULL and (lv[FAMILY_AT] <= 4 or lv[DOB_AT] <= 1)
    if lv[SEX_AT] == 1 and not (sex_keyed_wrong(lv) and not rival):
        # A twin held as "Sam" is not his sister Samantha searched as "Sam": the sex keyed the other
        # way is borne only when no other child sharing the family name and the home or birthday has
        # a given name close to the searched one (``rival``).
        return False
    if lv[FAMILY_AT] == NULL or lv[DOB_AT] == NULL or not dob_slip(lv[DOB_AT]):
        return False
    home = same_home(lv)
    if lv[GIVEN_AT] == NULL:  # "Baby": only the sole newborn at that home
        return lv[FAMILY_AT] == 0 and lv[DOB_AT] == 0 and home and household_alone
    if lv[GIVEN_AT] > CLOSE:  # sounds alike, similar, initial, differs: Hassan is not Hussain
        return False
    if lv[FAMILY_AT] == FAMILY.disagree and not home:
        return False  # a new surname needs the same home as evidence
    if lv[DOB_AT] <= 1:
        return True
    # One keying slip in the date: a namesake born a day apart is likelier than not in a large node.
    return home or (lv[FAMILY_AT] <= 1 and lv[GIVEN_AT] == 0 and lv[POSTCODE_AT] in (1, 2, 3))


def band(
    lv: Levels, probability: float, thresholds: tuple[float, float], capped: bool, alone: bool, rival: bool = False
) -> str:
    """``match``, ``possible`` or '' for one candidate.

    ``thresholds``: (match, possible) on the probability; ``capped``: the home guard found a
    better-fitting child at this one's home (never a ``match`` then); ``alone``: no other candidate
    shares its home or birthday and family name; ``rival``: another that does has a given name close to
    the searched one (then a sex keyed the other way is no ``match``).
    """
    match_at, possible_at = thresholds
    if not has_evidence(lv):
        return ""
    if probability >= match_at and not capped and corroborated(lv, alone, rival):
        return "match"
    return "possible" if probability >= possible_at or strong_partial(lv) else ""
