"""An authority's records as the node holds them, and the rules for a CSV row.

A row of the records CSV (contract section 3) is one involvement with a child;
rows sharing a ``record_id`` describe the same child. ``parse_row`` turns a row
into a :class:`Record` and one :class:`Involvement`, or a :class:`RowError`
whose reason names the column and never repeats the value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.identifiers import (
    nhs_number_valid,
    normalise_nhs_number,
    normalise_postcode,
    parse_date,
    parse_date_of_birth,
)
from core.subject import Subject

COLUMNS = (
    "record_id",
    "given_name",
    "middle_names",
    "family_name",
    "other_names",
    "date_of_birth",
    "sex",
    "address",
    "postcode",
    "nhs_number",
    "service",
    "team",
    "practitioner_name",
    "practitioner_role",
    "practitioner_phone",
    "practitioner_email",
    "involvement_start",
    "involvement_end",
    "shielded",
    "sensitive",
)
REQUIRED = ("record_id", "given_name", "family_name", "date_of_birth")
IDENTITY_FIELDS = ("given_name", "family_name", "date_of_birth")
MAX_FIELD = 500


@dataclass(frozen=True)
class Involvement:
    """One service's involvement with a child: the contact a searcher may be given."""

    service: str = ""
    team: str = ""
    practitioner_name: str = ""
    practitioner_role: str = ""
    practitioner_phone: str = ""
    practitioner_email: str = ""
    involvement_start: str = ""
    involvement_end: str = ""
    sensitive: bool = False


@dataclass(frozen=True, kw_only=True)
class Record(Subject):
    """One child as this authority knows them: a :class:`core.subject.Subject`'s identity fields, and the record's own.

    The identity fields are the Subject's, so a record and a search are compared on one shape. The
    match index copies them into columns when it is built (:mod:`node.matching`), so a Record is
    read once per build and never while answering. Keyword-only: ``record_id`` is required although
    it follows the Subject's defaulted fields (``parse_row`` requires given name, family name and
    date of birth as well).
    """

    record_id: str
    shielded: bool = False
    involvements: tuple[Involvement, ...] = field(default=())
    sensitive_only: bool = False
    """Every involvement is with a sensitive service (the store works this out; see ``answered_as_absent``)."""

    @property
    def answered_as_absent(self) -> bool:
        """Shielded, or known only to sensitive services: the node answers as if this record did not exist.

        Either way no match may be disclosed (a sensitive-only match would reveal the service), so the
        record must not sway any other answer either: see :mod:`node.matching`.
        """
        if self.shielded or self.sensitive_only:
            return True
        return bool(self.involvements) and all(i.sensitive for i in self.involvements)


@dataclass(frozen=True)
class RowError:
    """A row that was not loaded, and why: its line (CSV) or position (database), and the record id if it had one."""

    line: int
    reason: str
    key: str = ""
    """The row's ``record_id`` as the source gave it (the authority's own id, never a child's details)."""


def _flag(row: Mapping[str, str], column: str) -> bool:
    value = row.get(column, "").strip().lower()
    if value in ("", "false", "0", "no", "n"):
        return False
    if value in ("true", "1", "yes", "y"):
        return True
    raise ValueError(f"{column}: must be true or false")


def _optional_date(row: Mapping[str, str], column: str) -> str:
    value = row.get(column, "").strip()
    if value:
        try:
            parse_date(value)
        except ValueError as exc:
            raise ValueError(f"{column}: {exc}") from None
    return value


def _check(row: Mapping[str, str], today: dt.date) -> None:
    for column in REQUIRED:
        if not row.get(column, "").strip():
            raise ValueError(f"{column}: required but empty")
    for column in COLUMNS:
        if len(row.get(column, "")) > MAX_FIELD:
            raise ValueError(f"{column}: longer than {MAX_FIELD} characters")
    try:
        parse_date_of_birth(row["date_of_birth"].strip(), today)
    except ValueError as exc:
        raise ValueError(f"date_of_birth: {exc}") from None
    if row.get("sex", "").strip().upper() not in ("", "M", "F", "U"):
        raise ValueError("sex: must be M, F or U")
    nhs = row.get("nhs_number", "").strip()
    if nhs and not nhs_number_valid(nhs):
        raise ValueError("nhs_number: not 10 digits 0-9, not all one digit, with a valid check digit")


def parse_row(row: Mapping[str, str], today: dt.date | None = None) -> tuple[Record, Involvement]:
    """Validate one CSV row; raise ValueError with a reason that names the column.

    The date of birth must fall in the kernel's window (core.identifiers.parse_date_of_birth), judged
    on ``today`` (by default the UTC date now): a record no search may ask for is not loaded.
    """
    _check(row, today or dt.datetime.now(dt.UTC).date())
    start, end = _optional_date(row, "involvement_start"), _optional_date(row, "involvement_end")
    if start and end and end < start:
        raise ValueError("involvement_end: before involvement_start")
    involvement = Involvement(
        service=row.get("service", "").strip(),
        team=row.get("team", "").strip(),
        practitioner_name=row.get("practitioner_name", "").strip(),
        practitioner_role=row.get("practitioner_role", "").strip(),
        practitioner_phone=row.get("practitioner_phone", "").strip(),
        practitioner_email=row.get("practitioner_email", "").strip(),
        involvement_start=start,
        involvement_end=end,
        sensitive=_flag(row, "sensitive"),
    )
    other = tuple(n.strip() for n in row.get("other_names", "").split(";") if n.strip())
    nhs = row.get("nhs_number", "").strip()
    record = Record(
        record_id=row["record_id"].strip(),
        given_name=row["given_name"].strip(),
        family_name=row["family_name"].strip(),
        date_of_birth=row["date_of_birth"].strip(),
        middle_names=row.get("middle_names", "").strip(),
        other_names=other,
        sex=row.get("sex", "").strip().upper(),
        address=row.get("address", "").strip(),
        postcode=normalise_postcode(row.get("postcode", "").strip()) if row.get("postcode", "").strip() else "",
        nhs_number=normalise_nhs_number(nhs) if nhs else "",
        shielded=_flag(row, "shielded"),
    )
    return record, involvement


def same_child(a: Record, b: Record) -> bool:
    """Do two rows with one record_id agree on who the child is?"""
    return all(getattr(a, f).casefold() == getattr(b, f).casefold() for f in IDENTITY_FIELDS)
