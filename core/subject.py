"""The child searched for: one type from the HTTP boundary to the matcher, and the minimum query.

The broker builds a :class:`Subject` from a practitioner's JSON, sends it to the
nodes as ``signpost.v1.Subject`` (:meth:`Subject.to_proto`), and each node reads
it back (:meth:`Subject.from_proto`) and matches on it; the audit log hashes it.
The minimum query is judged here once, by the same rule on both sides: a node
refuses a search the broker should never have sent.

A Subject is never logged and never put in an error message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.addresses import house_number, street_word
from core.identifiers import postcode_valid
from core.names import name_problem
from protos.signpost.v1 import node_pb2

MINIMUM_QUERY = (
    "a search needs given_name, family_name and date_of_birth (without a date of birth: given_name, family_name "
    "and a full postcode or an address with its house number and street), or a valid nhs_number with family_name "
    "or date_of_birth"
)
"""The rule against trawling, in the words every refusal uses."""
NAME_RULE = (
    "a name has a part of at least two letters (one CJK ideograph is a name) and is not an initial, "
    "a placeholder such as Baby or a title such as Ms; leave the field out if the name is not known"
)
"""What a name given in a search must be, in the words every refusal of one uses."""
NO_HOME = (
    "gives no home to search by without a date of birth: an address needs a house number and the name of its "
    "street, not only words such as flat, apartment or road; or give a full postcode or the date of birth"
)
"""Why an address cannot carry a search without a date of birth, in the words every refusal uses (never the value)."""
NAME_FIELDS = ("given_name", "family_name")
_ORDER = ("given_name", "family_name", "date_of_birth", "address")
"""The fields the minimum query may name, in the order a form shows them."""
SEXES = ("", "M", "F", "U")
# Lone surrogates cannot be encoded as UTF-8 (protobuf and the audit store refuse them), and control
# characters (NUL above all, which PostgreSQL's text refuses) are never part of a name or a reason.
# Tab, CR and LF are allowed: a justification may be typed over several lines.
_WORD = re.compile(r"\w+")
_NOT_TEXT = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(value: str) -> str:
    """``value`` stripped and NFC-normalised; ValueError (never echoing it) when it is not well-formed text.

    NFC so that "Zoë" typed as one character or as e + diaeresis is one name on every side.
    """
    if _NOT_TEXT.search(value):
        raise ValueError("must be well-formed text without control characters or lone surrogates")
    return unicodedata.normalize("NFC", value).strip()


@dataclass(frozen=True)
class Subject:
    """The searched-for child, validated and normalised (never logged)."""

    given_name: str = ""
    middle_names: str = ""
    family_name: str = ""
    other_names: tuple[str, ...] = ()
    """Previous or alternative names, each "given family"."""
    date_of_birth: str = ""
    """YYYY-MM-DD."""
    sex: str = ""
    """M, F, U or empty."""
    postcode: str = ""
    address: str = ""
    nhs_number: str = ""
    """Ten digits, no spaces."""

    def to_proto(self) -> node_pb2.Subject:
        return node_pb2.Subject(
            given_name=self.given_name,
            middle_names=self.middle_names,
            family_name=self.family_name,
            other_names=list(self.other_names),
            date_of_birth=self.date_of_birth,
            sex=self.sex,
            postcode=self.postcode,
            address=self.address,
            nhs_number=self.nhs_number,
        )

    @classmethod
    def from_proto(cls, message: node_pb2.Subject) -> Subject:
        return cls(
            given_name=message.given_name,
            middle_names=message.middle_names,
            family_name=message.family_name,
            other_names=tuple(message.other_names),
            date_of_birth=message.date_of_birth,
            sex=message.sex,
            postcode=message.postcode,
            address=message.address,
            nhs_number=message.nhs_number,
        )


def name_problems(subject: Subject) -> dict[str, str]:
    """Each name field given that is no name ("." , zero-width spaces, an initial, "x", "Baby", "Ms"), with why.

    Such a value is refused wherever it is, not only when the minimum query needs it: a search must
    never rest on it, and a practitioner who does not know a name leaves the field out.
    """
    problems = {}
    for field in NAME_FIELDS:
        value = getattr(subject, field)
        reason = name_problem(value) if value else None
        if reason:
            problems[field] = reason
    return problems


def home_given(subject: Subject) -> bool:
    """Does the search say where the child lives closely enough to stand for a date of birth: a full
    postcode (not a sector or district), or an address with a house number and a street?

    The street is a word a node keys and compares homes by (:func:`core.addresses.street_word`), not
    filler: "Flat 1", "Apartment 2" or "1 Road" partly agrees with every flat 1 and every number 1 on
    a road, so a node finds nobody by it, and the search is refused here rather than answered empty.
    """
    if postcode_valid(subject.postcode):
        return True
    street = street_word(subject.address)
    return bool(house_number(subject.address)) and any(c.isalpha() for c in street)


def minimum_query_problems(subject: Subject) -> dict[str, str]:
    """Every field the minimum query refuses, with the reason: names that are no names, then fields missing.

    Given name + family name + date of birth (or, with no date of birth, + the home: :func:`home_given`),
    or an NHS number (checked valid by the caller) with a family name or a date of birth: less than that
    is a fishing trip, whoever sends it. A name counts
    only if it is a name (:func:`core.names.name_problem`); the node checks that an NHS number's family
    name or date of birth actually agrees.
    """
    problems = {field: f"not a name: it {reason}; {NAME_RULE}" for field, reason in name_problems(subject).items()}
    given, family = (bool(getattr(subject, f)) and f not in problems for f in NAME_FIELDS)
    # Without a date of birth (not known, or typed as no date at all) both names and the home must carry
    # the search; a node then returns at most a ``possible``, and only at that home (node.bands).
    by_name = given and family and (subject.date_of_birth or home_given(subject))
    by_nhs = subject.nhs_number and (family or subject.date_of_birth)
    if not (by_name or by_nhs):
        for field in ("given_name", "family_name", "date_of_birth"):
            if not getattr(subject, field):
                problems[field] = "required: " + MINIMUM_QUERY
        if given and family and subject.address and not postcode_valid(subject.postcode):
            problems["address"] = NO_HOME  # the home it was meant to carry the search: say why it cannot
    return problems


def missing_for_minimum_query(subject: Subject) -> tuple[str, ...]:
    """The fields a search lacks or must correct under the minimum query; () when it may go ahead."""
    return tuple(sorted(minimum_query_problems(subject), key=_ORDER.index))
