"""The portal's search form: its fields, turned into the API's request, and the API's errors put back on them.

The form is read into exactly the JSON body ``POST /v1/searches`` takes and checked by the same
``broker.search_request.parse_search``, so both doors refuse the same searches with the same reasons.
The date of birth comes as three boxes (the GOV.UK date-input pattern); only their shape is the
form's own rule (all three, as numbers), everything else about the date is the API's.

The values are the child's details: they are put back into the re-shown form and nowhere else. This
module never logs them and no message it makes repeats one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import InvalidRequest, RefusedSearch
from broker.search_request import MAX_OTHER_NAMES, SearchRequest, parse_search

TEXT_FIELDS = ("given_name", "family_name", "sex", "postcode", "nhs_number", "other_names", "purpose", "justification")
DATE_PARTS = ("dob_day", "dob_month", "dob_year")
FIELDS = (*TEXT_FIELDS, *DATE_PARTS)

LABELS = {
    "given_name": "Given name",
    "family_name": "Family name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "postcode": "Postcode",
    "nhs_number": "NHS number",
    "other_names": "Other or previous names",
    "purpose": "Purpose",
    "justification": "Justification",
}
"""Each form field's label, as the page shows it and as its errors begin."""

# The API's field names (``subject.x``, ``purpose.y``) as the form's; the date's errors go to its first box.
_API_TO_FORM = {
    "subject.given_name": "given_name",
    "subject.family_name": "family_name",
    "subject.date_of_birth": "date_of_birth",
    "subject.sex": "sex",
    "subject.postcode": "postcode",
    "subject.nhs_number": "nhs_number",
    "subject.other_names": "other_names",
    "purpose.code": "purpose",
    "purpose.justification": "justification",
}
FIELD_IDS = {"date_of_birth": "dob_day"}
"""The element an error-summary link for a field goes to, where it is not the field's own name."""
ORDER = tuple(LABELS)
"""The order of the form's fields, which the error summary follows."""


@dataclass(frozen=True)
class SearchForm:
    """What was typed, as typed (strings), to re-show the form; never logged."""

    values: Mapping[str, str]

    @classmethod
    def read(cls, posted: Mapping[str, Any]) -> SearchForm:
        """The form's own fields from a POST, as strings; anything else posted is ignored."""
        return cls({name: str(posted.get(name, "")) for name in FIELDS})

    @classmethod
    def empty(cls) -> SearchForm:
        return cls(dict.fromkeys(FIELDS, ""))

    def __getitem__(self, name: str) -> str:
        return self.values.get(name, "")

    def date_problem(self) -> str | None:
        """The date boxes' own problem (missing or not numbers), or None when the API may judge the date."""
        parts = [self[p].strip() for p in DATE_PARTS]
        if not any(parts):
            return None  # no date: the minimum query decides whether one is needed
        missing = [n for n, p in zip(("a day", "a month", "a year"), parts, strict=True) if not p]
        if missing:
            return "must include " + " and ".join(missing)
        if not all(p.isascii() and p.isdigit() for p in parts) or len(parts[2]) != 4:
            return "must be a real date, as numbers, with a 4-digit year: for example, 27 3 2014"
        return None

    def date_of_birth(self) -> str:
        """The three boxes as the API's YYYY-MM-DD, or "" when they are empty or not numbers."""
        if self.date_problem() is not None or not self["dob_year"].strip():
            return ""
        day, month, year = (int(self[p].strip()) for p in DATE_PARTS)
        return f"{year:04}-{month:02}-{day:02}"

    def body(self) -> dict[str, Any]:
        """The contract's JSON request body this form amounts to."""
        other = [line.strip() for line in self["other_names"].splitlines() if line.strip()]
        subject = {
            "given_name": self["given_name"],
            "family_name": self["family_name"],
            "date_of_birth": self.date_of_birth(),
            "sex": self["sex"],
            "postcode": self["postcode"],
            "nhs_number": self["nhs_number"],
            # More than the API takes is its error to give; the list is cut only so it stays bounded.
            "other_names": other[: MAX_OTHER_NAMES + 1],
        }
        return {"subject": subject, "purpose": {"code": self["purpose"], "justification": self["justification"]}}

    def parse(self, today: dt.date) -> SearchRequest:
        """The search this form asks for, by the API's rules; InvalidRequest whose fields are the form's."""
        problem = self.date_problem()
        try:
            search = parse_search(self.body(), today=today)
        except InvalidRequest as exc:
            fields = form_errors(exc.fields)
            if problem:
                fields["date_of_birth"] = problem
            if isinstance(exc, RefusedSearch) and not problem:
                raise RefusedSearch(exc.message, fields=fields, subject=exc.subject) from None
            raise InvalidRequest(exc.message, fields=fields) from None
        if problem:
            raise InvalidRequest("the search request is not valid", fields={"date_of_birth": problem})
        return search


def form_errors(api_fields: Mapping[str, str]) -> dict[str, str]:
    """The API's field errors keyed by the form's field names (an error on no form field goes to the top)."""
    errors: dict[str, str] = {}
    for name, reason in api_fields.items():
        errors.setdefault(_API_TO_FORM.get(name, ""), reason)
    return errors


@dataclass(frozen=True)
class ErrorItem:
    """One line of the GOV.UK error summary, linking to the field it names."""

    field: str
    target: str
    text: str


def messages(errors: Mapping[str, str]) -> dict[str, str]:
    """Each field's error as a sentence beginning with its label: "Date of birth is in the future",
    "Justification: required, 10 to 500 characters". The reasons are the API's, which never hold a value."""
    sentences = {}
    for name, reason in errors.items():
        label = LABELS.get(name, "The search")
        joined = " " if reason.startswith(("is ", "must ")) else ": "
        sentences[name] = f"{label}{joined}{reason}"
    return sentences


def summary(errors: Mapping[str, str]) -> list[ErrorItem]:
    """The error summary's lines, in the form's order, each linking to its field."""
    sentences = messages(errors)
    return [
        ErrorItem(name, FIELD_IDS.get(name, name or "given_name"), sentences[name])
        for name in (*ORDER, "")
        if name in sentences
    ]
