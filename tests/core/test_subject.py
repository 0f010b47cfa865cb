"""One Subject from the HTTP boundary to the matcher, and one minimum query for broker and node."""

from __future__ import annotations

import dataclasses

import pytest

from core.names import first_token, fold, is_placeholder, tokens
from core.stats import of_sorted, percentile
from core.subject import Subject, clean_text, minimum_query_problems, missing_for_minimum_query
from protos.signpost.v1 import node_pb2

FULL = Subject(
    given_name="Amelia",
    middle_names="Rose",
    family_name="Smith",
    other_names=("Amelia Jones",),
    date_of_birth="2014-03-09",
    sex="F",
    postcode="LS6 2AB",
    address="12 Oak Road",
    nhs_number="9434765919",
)


def test_a_subject_survives_the_wire_unchanged():
    assert Subject.from_proto(FULL.to_proto()) == FULL
    assert Subject.from_proto(node_pb2.Subject.FromString(FULL.to_proto().SerializeToString())) == FULL


def test_every_field_of_the_wire_subject_is_a_field_of_subject():
    # A field added to the proto but not to Subject would be dropped silently between broker and node.
    wire = {f.name for f in node_pb2.Subject.DESCRIPTOR.fields}
    assert wire == {f.name for f in dataclasses.fields(Subject)}


@pytest.mark.parametrize(
    ("subject", "missing"),
    [
        (Subject(given_name="Amy", family_name="Bo", date_of_birth="2014-03-09"), ()),
        (Subject(nhs_number="9434765919", family_name="Bo"), ()),
        (Subject(nhs_number="9434765919", date_of_birth="2014-03-09"), ()),
        (Subject(family_name="Bo"), ("given_name", "date_of_birth")),
        (Subject(nhs_number="9434765919"), ("given_name", "family_name", "date_of_birth")),
        (Subject(given_name="Amy", family_name="Bo"), ("date_of_birth",)),
        # Without a date of birth, both names and the home: a full postcode, or a house number and street.
        (Subject(given_name="Amy", family_name="Bo", postcode="ls62ab"), ()),
        (Subject(given_name="Amy", family_name="Bo", address="12a Oak Road"), ()),
        (Subject(given_name="Amy", family_name="Bo", postcode="LS6 2"), ("date_of_birth",)),
        (Subject(given_name="Amy", family_name="Bo", address="Oak Road Leeds"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="12"), ("date_of_birth", "address")),
        # Filler is no street: it partly agrees with every flat 1 or number 1 on a road, and a node finds
        # nobody by it, so the address is named as the field to correct.
        (Subject(given_name="Amy", family_name="Bo", address="Flat 1"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="Apartment 2"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="c/o"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="Flat 1 Road"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="1 n st"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", postcode="LS6 2", address="1 Road"), ("date_of_birth", "address")),
        (Subject(given_name="Amy", family_name="Bo", address="Flat 2, 12a Oak Road"), ()),
        (Subject(given_name="Amy", family_name="Bo", address="Flat 1", postcode="LS6 2AB"), ()),
        (Subject(given_name="Amy", family_name="Bo", address="Flat 1", date_of_birth="2014-03-09"), ()),
        # The names are corrected first: the address is named only once they would carry the search.
        (Subject(given_name="A", family_name="Bo", address="Flat 1"), ("given_name", "date_of_birth")),
        (Subject(family_name="Bo", postcode="LS6 2AB"), ("given_name", "date_of_birth")),
        (Subject(given_name="A", family_name="Bo", postcode="LS6 2AB"), ("given_name", "date_of_birth")),
        (Subject(), ("given_name", "family_name", "date_of_birth")),
        # A name must be a name: the fishing trips of issue 13 met the old rule with these.
        (Subject(given_name=".", family_name="Bo", date_of_birth="2014-03-09"), ("given_name",)),
        (Subject(given_name="\u200b\u200b", family_name="Bo", date_of_birth="2014-03-09"), ("given_name",)),
        (Subject(given_name="A", family_name="Bo", date_of_birth="2014-03-09"), ("given_name",)),
        (Subject(given_name="Amy", family_name="B", date_of_birth="2014-03-09"), ("family_name",)),
        (Subject(given_name="Baby", family_name="Bo", date_of_birth="2014-03-09"), ("given_name",)),
        (Subject(given_name="Ms", family_name="Bo", date_of_birth="2014-03-09"), ("given_name",)),
        (Subject(nhs_number="9434765919", family_name="x"), ("given_name", "family_name", "date_of_birth")),
        # An NHS number with a date of birth is enough, but a junk name beside it is still refused.
        (Subject(nhs_number="9434765919", family_name="x", date_of_birth="2014-03-09"), ("family_name",)),
        # Names in any script: one CJK ideograph is a whole family name.
        (Subject(given_name="\u5c0f\u660e", family_name="\u738b", date_of_birth="2014-03-09"), ()),
        (
            Subject(
                given_name="\u0410\u043d\u043d\u0430",
                family_name="\u0418\u0432\u0430\u043d\u043e\u0432\u0430",
                date_of_birth="2014-03-09",
            ),
            (),
        ),
    ],
)
def test_minimum_query(subject, missing):
    assert missing_for_minimum_query(subject) == missing


def test_the_minimum_querys_reasons_never_repeat_the_value():
    problems = minimum_query_problems(Subject(given_name="Q.", family_name="Zq", date_of_birth="2014-03-09"))
    assert set(problems) == {"given_name"}
    assert "Q" not in problems["given_name"] and "not a name" in problems["given_name"]


def test_names_fold_the_same_way_everywhere():
    assert fold("Ó Briain-Smith") == "o briain smith"
    assert tokens("O'Brien-Smith") == tokens("obrien smith") == ("obrien", "smith")
    assert tokens("Mac Donald") == ("macdonald",)
    assert is_placeholder("Baby") and is_placeholder("Twin 1") and not is_placeholder("Amelia")
    assert first_token("Baby") == "" and first_token("Mary Jane") == "mary"


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([], 50) is None


def test_of_sorted_agrees_with_percentile():
    values = [7.0, 1.0, 4.0, 9.0, 2.0, 8.0]
    for q in (0, 10, 50, 90, 99, 100):
        assert of_sorted(sorted(values), q) == percentile(values, q)


@pytest.mark.parametrize("text", ["X\ud800Y", "\udfff", "Amy\x00", "Amy\x1b[2J", "Amy\x85"])
def test_text_that_is_not_well_formed_is_refused_without_echo(text):
    # A lone surrogate cannot be encoded as UTF-8 (protobuf, the audit store); controls are never a name.
    with pytest.raises(ValueError) as caught:
        clean_text(text)
    assert text not in str(caught.value)


def test_text_is_nfc_normalised_and_stripped():
    decomposed = " Zoe\u0308 "  # e + combining diaeresis
    assert clean_text(decomposed) == "Zo\u00eb"
    assert clean_text("line one\nline two\ttab") == "line one\nline two\ttab"
