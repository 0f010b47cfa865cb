"""A practitioner's search request: parsing and checking the contract's JSON.

Every problem is reported against the field it concerns (``subject.date_of_birth``)
with a reason that never repeats the submitted value — the value may be a
child's details, and error bodies end up in client logs. The rules it applies
(purposes, the justification, the minimum query) are broker.policy's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from broker.errors import InvalidRequest
from broker.policy import (
    JUSTIFICATION_LENGTH,
    JUSTIFICATION_NAMES_THE_CHILD,
    PURPOSES,
    justification_names_the_child,
    minimum_query_refusals,
)
from core.identifiers import nhs_number_valid, normalise_nhs_number, normalise_postcode, parse_date_of_birth
from core.subject import Subject

SUBJECT_TEXT = (
    "given_name",
    "middle_names",
    "family_name",
    "date_of_birth",
    "sex",
    "postcode",
    "address",
    "nhs_number",
)
SUBJECT_FIELDS = frozenset((*SUBJECT_TEXT, "other_names"))
TOP_FIELDS = frozenset({"subject", "purpose"})
PURPOSE_FIELDS = frozenset({"code", "justification"})
MAX_TEXT = 100
MAX_ADDRESS = 200
MAX_OTHER_NAMES = 10


@dataclass(frozen=True)
class SearchRequest:
    subject: Subject
    purpose_code: str
    justification: str


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, field: str, reason: str) -> None:
        self.fields.setdefault(field, reason)

    def unknown(self, prefix: str, given: dict[str, Any], allowed: frozenset[str]) -> None:
        for key in sorted(set(given) - allowed):
            # The key is the client's own field name, not a child's details, so naming it is safe.
            self.add(f"{prefix}{key[:40]}", "unknown field")


def _subject(raw: Any, errors: _Errors, today: dt.date) -> Subject:
    if not isinstance(raw, dict):
        errors.add("subject", "required, an object")
        return Subject()
    errors.unknown("subject.", raw, SUBJECT_FIELDS)
    values: dict[str, Any] = {}
    for name in SUBJECT_TEXT:
        value = raw.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors.add(f"subject.{name}", "must be a string")
            continue
        limit = MAX_ADDRESS if name == "address" else MAX_TEXT
        if len(value) > limit:
            errors.add(f"subject.{name}", f"longer than {limit} characters")
            continue
        values[name] = value.strip()
    other = raw.get("other_names", [])
    if not isinstance(other, list) or not all(isinstance(n, str) and len(n) <= MAX_TEXT for n in other):
        errors.add("subject.other_names", f"must be a list of strings of at most {MAX_TEXT} characters")
        other = []
    elif len(other) > MAX_OTHER_NAMES:
        errors.add("subject.other_names", f"at most {MAX_OTHER_NAMES} names")
        other = []
    _check_values(values, errors, today)
    return Subject(**{k: v for k, v in values.items()}, other_names=tuple(n.strip() for n in other if n.strip()))


def _check_values(values: dict[str, str], errors: _Errors, today: dt.date) -> None:
    dob = values.get("date_of_birth", "")
    if dob:
        try:
            parse_date_of_birth(dob, today)
        except ValueError as exc:
            errors.add("subject.date_of_birth", str(exc))
    sex = values.get("sex", "")
    if sex and sex.upper() not in ("M", "F", "U"):
        errors.add("subject.sex", "must be M, F or U")
    values["sex"] = sex.upper()
    nhs = values.get("nhs_number", "")
    if nhs:
        if nhs_number_valid(nhs):
            values["nhs_number"] = normalise_nhs_number(nhs)
        else:
            errors.add("subject.nhs_number", "must be 10 digits with a valid modulus-11 check digit")
    if values.get("postcode"):
        values["postcode"] = normalise_postcode(values["postcode"])


def _minimum_query(subject: Subject, errors: _Errors) -> None:
    if any(f.startswith("subject") for f in errors.fields):
        return  # fix the fields first; the minimum-query rule is judged on valid values
    for name, reason in minimum_query_refusals(subject).items():
        errors.add(name, reason)


def _purpose(raw: Any, errors: _Errors) -> tuple[str, str]:
    if not isinstance(raw, dict):
        errors.add("purpose", "required, an object with code and justification")
        return "", ""
    errors.unknown("purpose.", raw, PURPOSE_FIELDS)
    code, justification = raw.get("code"), raw.get("justification")
    if not isinstance(code, str) or code not in PURPOSES:
        errors.add("purpose.code", "must be one of: " + ", ".join(PURPOSES))
    low, high = JUSTIFICATION_LENGTH
    if not isinstance(justification, str) or not low <= len(justification.strip()) <= high:
        errors.add("purpose.justification", f"required, {low} to {high} characters")
    return (code if isinstance(code, str) else ""), (justification.strip() if isinstance(justification, str) else "")


def parse_search(body: Any, *, today: dt.date) -> SearchRequest:
    """Check a decoded JSON body; raise InvalidRequest naming every bad field."""
    errors = _Errors()
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", fields={"body": "must be an object"})
    errors.unknown("", body, TOP_FIELDS)
    subject = _subject(body.get("subject"), errors, today)
    _minimum_query(subject, errors)
    code, justification = _purpose(body.get("purpose"), errors)
    if justification and not any(f.startswith("subject") for f in errors.fields):
        if justification_names_the_child(justification, subject):
            errors.add("purpose.justification", JUSTIFICATION_NAMES_THE_CHILD)
    if errors.fields:
        raise InvalidRequest("the search request is not valid", fields=errors.fields)
    return SearchRequest(subject, code, justification)
