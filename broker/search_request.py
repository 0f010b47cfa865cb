"""A practitioner's search request: decoding the body and checking the contract's JSON.

Every problem is reported against the field it concerns (``subject.date_of_birth``)
with a reason that never repeats the submitted value — the value may be a
child's details, and error bodies end up in client logs. An unknown field is named by
its position (``"subject": "unknown field #4"``), never by its key: a key is client
text too, and a child's name can be put in one. The body is bounded in nesting depth and
number size before it is parsed, so no input can reach a RecursionError or int()'s digit
limit. The rules it applies (purposes, the justification, the minimum query) are
broker.policy's; the text and identifier rules are core's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from broker.errors import InvalidRequest, RefusedSearch
from broker.policy import (
    JUSTIFICATION_LENGTH,
    JUSTIFICATION_NAMES_THE_CHILD,
    PURPOSES,
    justification_names_the_child,
    minimum_query_refusals,
)
from core.identifiers import (
    date_form,
    nhs_number_valid,
    normalise_nhs_number,
    normalise_postcode,
    read_date_of_birth,
)
from core.subject import Subject, clean_text

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
MAX_DEPTH = 8
"""Deepest nesting a body may have; a valid one needs 3 (body, subject, other_names)."""
MAX_NUMBER = 32
"""Longest number literal, in characters; the contract has no numbers, but a bad one is a 400, not a 500."""
# Counting nesting reads strings as whole tokens (a bracket inside one is text, not structure). An
# unterminated string runs to the end of the body and a trailing backslash is taken with it, so every
# token matches where it starts and the scan is linear: a string that could fail to match would be
# retried from each later quote, and 32,768 escaped quotes would take a minute.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.?)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)


class _Refused(ValueError):
    """A number or constant the decoder will not build."""


def _number(text: str) -> float | int:
    if len(text) > MAX_NUMBER:
        raise _Refused
    number = float(text) if any(c in text for c in ".eE") else int(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise _Refused
    return number


def _constant(_text: str) -> None:
    raise _Refused  # NaN, Infinity, -Infinity: not JSON


def _too_deep(raw: bytes) -> bool:
    depth = 0
    for token in _TOKENS.finditer(raw):
        bracket = token[0]
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif bracket in (b"]", b"}"):
            depth -= 1
    return False


def decode_body(raw: bytes) -> Any:
    """The body's JSON, bounded in depth and number size; InvalidRequest naming ``body`` when it is not."""
    if _too_deep(raw):
        raise InvalidRequest(
            f"the body is nested deeper than {MAX_DEPTH} levels", fields={"body": f"at most {MAX_DEPTH} levels deep"}
        )
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_number, parse_float=_number, parse_constant=_constant)
    except _Refused:
        raise InvalidRequest(
            "the body has a number the contract does not allow",
            fields={"body": f"numbers at most {MAX_NUMBER} characters, finite"},
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "encoding"
        raise InvalidRequest(f"the body is not valid JSON ({where})", fields={"body": "not valid JSON"}) from None


DATE_OF_BIRTH_READ = "date_of_birth_read"
"""Notice: the date of birth was no plausible date and was searched as its one likely reading — in the
future, as the latest plausible date one digit away (2112 typed for 2012); a month past 12, with day and
month the other way round (2006-16-07 for 2006-07-16). The response and the audit entry carry it, never
the dates."""
DATE_OF_BIRTH_NOT_USED = "date_of_birth_not_used"
"""Notice: the date of birth, written as a date, was no plausible date with no one likely reading
(30 February, 31 June, 29 February of a year that is not leap, a year before 1900) and the search had
both names and the home: it was searched without the date, so it can find only a ``possible`` at that
home. Without the home such a date is still a 400 naming ``subject.date_of_birth``."""


@dataclass(frozen=True)
class SearchRequest:
    subject: Subject
    purpose_code: str
    justification: str
    notices: tuple[str, ...] = ()
    """What the broker read differently from what was typed (``DATE_OF_BIRTH_READ``)."""


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.notices: list[str] = []
        """Not errors: what was read differently from what was typed."""
        self.typed_date_of_birth = ""
        """The date of birth as typed, when it was read as another or not used (the justification must not
        hold it either)."""
        self.unusable_date = ""
        """Why the date of birth typed was not used, should the search be refused without it."""

    def add(self, field: str, reason: str) -> None:
        self.fields.setdefault(field, reason)

    def unknown(self, where: str, given: dict[str, Any], allowed: frozenset[str]) -> None:
        # By position (from 1, in the order written), never by key: a child's name can be put in a key.
        positions = [f"#{i}" for i, key in enumerate(given, start=1) if key not in allowed]
        if positions:
            self.add(where, ("unknown fields " if len(positions) > 1 else "unknown field ") + ", ".join(positions))

    def text(self, field: str, value: str) -> str | None:
        """``value`` well-formed and NFC-normalised, or None with the field's error recorded."""
        try:
            return clean_text(value)
        except ValueError as exc:
            self.add(field, str(exc))
            return None


def _subject(raw: Any, errors: _Errors, today: dt.date) -> Subject:
    if not isinstance(raw, dict):
        errors.add("subject", "required, an object")
        return Subject()
    errors.unknown("subject", raw, SUBJECT_FIELDS)
    values: dict[str, Any] = {}
    for name in SUBJECT_TEXT:
        value = raw.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors.add(f"subject.{name}", "must be a string")
            continue
        limit = MAX_ADDRESS if name == "address" else MAX_TEXT
        text = errors.text(f"subject.{name}", value)
        # Measured after NFC, which can lengthen a string (one character may compose to three).
        if text is not None and len(text) > limit:
            errors.add(f"subject.{name}", f"longer than {limit} characters")
        elif text is not None:
            values[name] = text
    other = _other_names(raw.get("other_names", []), errors)
    _check_values(values, errors, today)
    return Subject(**{k: v for k, v in values.items()}, other_names=other)


def _other_names(other: Any, errors: _Errors) -> tuple[str, ...]:
    if not isinstance(other, list) or not all(isinstance(n, str) and len(n) <= MAX_TEXT for n in other):
        errors.add("subject.other_names", f"must be a list of strings of at most {MAX_TEXT} characters")
        return ()
    if len(other) > MAX_OTHER_NAMES:
        errors.add("subject.other_names", f"at most {MAX_OTHER_NAMES} names")
        return ()
    names = [errors.text("subject.other_names", n) for n in other]
    if any(n is not None and len(n) > MAX_TEXT for n in names):
        errors.add("subject.other_names", f"must be a list of strings of at most {MAX_TEXT} characters")
        return ()
    return tuple(n for n in names if n)


def _check_values(values: dict[str, str], errors: _Errors, today: dt.date) -> None:
    dob = values.get("date_of_birth", "")
    if dob:
        try:
            born, read = read_date_of_birth(dob, today)
        except ValueError as exc:
            if not date_form(dob):
                errors.add("subject.date_of_birth", str(exc))  # not a date at all: say so
            else:
                # A date with no one likely reading: searched without it if names and home carry the
                # search (the minimum query judges that), else refused with this reason.
                values["date_of_birth"] = ""
                errors.typed_date_of_birth, errors.unusable_date = dob, str(exc)
        else:
            if read:  # a slip such as 2112 for 2012 is searched as the plausible reading, and says so
                values["date_of_birth"] = born.isoformat()
                errors.typed_date_of_birth = dob
                errors.notices.append(DATE_OF_BIRTH_READ)
    sex = values.get("sex", "")
    if sex and sex.upper() not in ("M", "F", "U"):
        errors.add("subject.sex", "must be M, F or U")
    values["sex"] = sex.upper()
    nhs = values.get("nhs_number", "")
    if nhs:
        if nhs_number_valid(nhs):
            values["nhs_number"] = normalise_nhs_number(nhs)
        else:
            errors.add("subject.nhs_number", "must be 10 digits 0-9, not all one digit, with a valid check digit")
    if values.get("postcode"):
        values["postcode"] = normalise_postcode(values["postcode"])


def _minimum_query(subject: Subject, errors: _Errors) -> None:
    if any(f.startswith("subject") for f in errors.fields):
        return  # fix the fields first; the minimum-query rule is judged on valid values
    refusals = minimum_query_refusals(subject)
    if errors.unusable_date:
        if refusals:  # the search needed the date: refuse it for what is wrong with the date
            errors.add("subject.date_of_birth", errors.unusable_date)
        else:
            errors.notices.append(DATE_OF_BIRTH_NOT_USED)
    for name, reason in refusals.items():
        errors.add(name, reason)


def _purpose(raw: Any, errors: _Errors) -> tuple[str, str]:
    if not isinstance(raw, dict):
        errors.add("purpose", "required, an object with code and justification")
        return "", ""
    errors.unknown("purpose", raw, PURPOSE_FIELDS)
    code, given = raw.get("code"), raw.get("justification")
    if not isinstance(code, str) or code not in PURPOSES:
        errors.add("purpose.code", "must be one of: " + ", ".join(PURPOSES))
    low, high = JUSTIFICATION_LENGTH
    justification = errors.text("purpose.justification", given) if isinstance(given, str) else None
    if justification is None or not low <= len(justification) <= high:
        errors.add("purpose.justification", f"required, {low} to {high} characters")
    return (code if isinstance(code, str) else ""), (justification or "")


def parse_search(body: Any, *, today: dt.date) -> SearchRequest:
    """Check a decoded JSON body; raise InvalidRequest naming every bad field."""
    errors = _Errors()
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", fields={"body": "must be an object"})
    errors.unknown("body", body, TOP_FIELDS)
    subject = _subject(body.get("subject"), errors, today)
    read = not any(f.startswith("subject") for f in errors.fields)  # every subject value is well-formed
    _minimum_query(subject, errors)
    code, justification = _purpose(body.get("purpose"), errors)
    if justification and not any(f.startswith("subject") for f in errors.fields):
        typed = [replace(subject, date_of_birth=errors.typed_date_of_birth)] if errors.typed_date_of_birth else []
        if any(justification_names_the_child(justification, s) for s in (subject, *typed)):
            errors.add("purpose.justification", JUSTIFICATION_NAMES_THE_CHILD)
    if errors.fields and read:
        raise RefusedSearch("the search request is not valid", fields=errors.fields, subject=subject)
    if errors.fields:
        raise InvalidRequest("the search request is not valid", fields=errors.fields)
    return SearchRequest(subject, code, justification, tuple(errors.notices))
