"""``govmail account import``: many people (and agencies) from one UTF-8 CSV file, all or nothing.

Every row is checked and planned first (names, agencies, addresses and namesakes under the policy
profile, quotas against REQUIREMENTS M6); one bad row refuses the whole file with every bad row
listed (:class:`~govmail.errors.ImportRowsError`) and nothing changed. Then the entries are added,
initial passwords hashed on several threads; a directory failure midway stops with a report of
what was applied (:class:`~govmail.errors.ImportApplyError`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import naming, passwords, policy
from .accounts import KINDS, Plan, _create, _plan_agency, _plan_person, _Taken, agency_local
from .directory import Directory, DirectoryError
from .errors import AccountError, ImportApplyError, ImportRowsError, NamingError, PolicyError, RowError

# Hashing an initial password costs about 40 ms (Argon2id, 19 MiB): a bulk import hashes on
# several threads (argon2-cffi releases the GIL) while the directory adds the previous rows.
HASH_WORKERS = max(2, min(8, os.cpu_count() or 2))


_HEADERS = {
    "name": ("name", "fullname", "hoten", "hovaten", "ten"),
    "agency": ("agency", "abbreviation", "coquan", "donvi"),
    "kind": ("kind", "type", "loai"),
    "quota": ("quota", "dungluong", "hanmuc"),
}
_POSITIONS = ("name", "agency", "kind", "quota")


@dataclass
class Row:
    """One data row of an import file; ``row`` is its line number (the header is line 1)."""

    row: int
    name: str
    agency: str
    kind: str = ""
    quota: str = ""
    problem: str | None = None
    others: tuple[str, ...] = ()  # cells of further named columns (date of birth, staff number ...)


def _header_key(cell: str) -> str | None:
    folded = re.sub(r"[\s_\-]", "", naming.fold(cell.strip()))
    for key, names in _HEADERS.items():
        if folded in names:
            return key
    return None


def read_rows(path: Path | str) -> list[Row]:
    """The rows of a UTF-8 CSV file: name, agency[, kind[, quota]], with or without a header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AccountError(f"import file {path} does not exist: check the path") from None
    except OSError as exc:
        raise AccountError(f"import file {path} cannot be read ({exc.strerror}): check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AccountError(
            f"import file {path} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "save it as 'CSV UTF-8' (TCVN 6909, REQUIREMENTS A5)"
        ) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[Row] = []
    columns: dict[str, int] | None = None
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if columns is None and not rows:
                keys = [_header_key(cell) for cell in cells]
                if keys[0] is not None and "name" in keys:
                    if "agency" not in keys:
                        raise AccountError(f"import file {path}: the header (line {start}) has no agency column")
                    columns = {}
                    for index, key in enumerate(keys):
                        if key and key in columns:
                            raise AccountError(f"import file {path}: the header (line {start}) has two {key} columns")
                        if key:
                            columns[key] = index
                    continue
                columns = {}
            rows.append(_row(start, cells, columns))
    except csv.Error as exc:
        raise AccountError(f"import file {path} is not valid CSV near line {line} ({exc}): fix the quoting") from None
    if not rows:
        raise AccountError(f"import file {path} has no rows: one person per line, name then agency")
    return rows


def _row(number: int, cells: list[str], columns: dict[str, int]) -> Row:
    others: tuple[str, ...] = ()
    if columns:
        values = {key: cells[index] if index < len(cells) else "" for key, index in columns.items()}
        used = set(columns.values())
        others = tuple(" ".join(cell.split()).lower() for index, cell in enumerate(cells) if index not in used)
    else:
        values = dict(zip(_POSITIONS, cells, strict=False))
    row = Row(number, *(values.get(key, "") for key in _POSITIONS), others=others)
    filled = len(cells)
    while filled and not cells[filled - 1]:
        filled -= 1
    if not columns and filled > len(_POSITIONS):
        row.problem = f"has {filled} columns: expected name, agency, then optionally kind and quota"
    elif not row.name:
        row.problem = "has no name"
    elif not row.agency:
        row.problem = "has no agency: give the agency's abbreviation (e.g. sokhcn)"
    return row


def plan_import(
    directory: Directory, rows: list[Row], profile: policy.PolicyProfile
) -> tuple[list[Plan], list[RowError]]:
    """Check every row against the directory and the other rows; plan the entries to create.

    Agencies (rows of kind ``agency``, their abbreviation written ``abbr`` or ``unit.parent`` in
    the agency column) are planned and later created before people, each in file order.
    """
    errors: list[RowError] = []
    planned: list[Plan] = []
    taken = _Taken(directory)
    existing: dict[str, bool] = {}
    new_agencies: dict[str, int] = {}  # local part -> row that creates it
    bad_agencies: dict[str, int] = {}

    def agency_exists(local: str) -> bool:
        if local in new_agencies:
            return True
        if local not in existing:
            existing[local] = directory.exists(directory.agency_dn(local))
        return existing[local]

    def kind_of(row: Row) -> str:
        kind = row.kind.strip().lower() or "personal"
        if kind not in KINDS:
            raise AccountError(f"kind {row.kind!r} is unknown: use personal or agency")
        return kind

    agency_rows, person_rows = [], []
    for row in rows:
        if row.problem:
            errors.append(RowError(row.row, f"row {row.row} {row.problem}"))
            continue
        try:
            (agency_rows if kind_of(row) == "agency" else person_rows).append(row)
        except AccountError as exc:
            errors.append(RowError(row.row, f"row {row.row}: {exc}"))

    for row in agency_rows:
        try:
            unit, _, parent = row.agency.strip().lower().partition(".")
            if parent and "." in parent:
                raise AccountError(f"agency {row.agency!r} has more than two levels: write unit.parent")
            if parent:
                parent_local = agency_local(parent)
                if parent_local in bad_agencies:
                    raise AccountError(
                        f"parent agency {parent_local} is created by row {bad_agencies[parent_local]}, which is invalid"
                    )
            local = agency_local(row.agency)
            if local in new_agencies:
                raise AccountError(f"agency {local} is also created by row {new_agencies[local]}")
            plan = _plan_agency(
                directory, row.name, unit, taken, parent=parent or None, quota=row.quota, agencies=agency_exists
            )
        except (AccountError, NamingError, PolicyError) as exc:
            errors.append(RowError(row.row, f"row {row.row}: {exc}"))
            with contextlib.suppress(NamingError):  # people of an agency that will not exist fail too
                failed = agency_local(row.agency)
                if not agency_exists(failed):
                    bad_agencies.setdefault(failed, row.row)
            continue
        plan.row = row.row
        new_agencies[plan.agency] = row.row
        taken.assign(plan.address)
        planned.append(plan)

    seen: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for row in person_rows:
        try:
            local = agency_local(row.agency)
            if local in bad_agencies:
                raise AccountError(f"agency {local} is created by row {bad_agencies[local]}, which is invalid")
            key = (naming.fold(" ".join(row.name.split())), local, row.others)
            if key in seen:
                raise AccountError(
                    f"repeats row {seen[key]} (same name and agency): remove the duplicate; if they are two people, "
                    "add a column that tells them apart (e.g. date of birth) or add one with govmail account add"
                )
            plan = _plan_person(
                directory, row.name, row.agency, profile, taken, quota=row.quota, agencies=agency_exists
            )
        except (AccountError, NamingError, PolicyError) as exc:
            errors.append(RowError(row.row, f"row {row.row}: {exc}"))
            continue
        seen[key] = row.row
        plan.row = row.row
        taken.assign(plan.address, plan.base_address)
        planned.append(plan)

    errors.sort(key=lambda error: error.row)
    return planned, errors


def _hashed(initials: list[str]) -> Generator[str, None, None]:
    with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
        yield from pool.map(passwords.hash_password, initials)


def import_file(
    directory: Directory,
    path: Path | str,
    *,
    profile: policy.PolicyProfile,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Validate every row, then (unless ``dry_run``) create the mailboxes.

    Returns ``{"file", "dry_run", "rows": [{"row", "kind", "name", "agency", "address", "dn",
    "quota_bytes", "initial_password"}...]}`` in file order. Invalid rows raise
    :class:`ImportRowsError` before anything changes; a directory failure while applying raises
    :class:`ImportApplyError` whose ``report`` lists the rows applied (with their passwords),
    the failed row and the rows not applied.
    """
    rows = read_rows(path)
    planned, errors = plan_import(directory, rows, profile)
    if errors:
        raise ImportRowsError(str(path), errors, len(rows))
    if dry_run:
        documents = sorted((plan.as_dict() for plan in planned), key=lambda doc: doc["row"])
        return {"file": str(path), "dry_run": True, "rows": documents}
    initials = [passwords.generate(profile=profile) for _ in planned]
    applied: list[dict[str, Any]] = []
    taken = _Taken(directory)
    hashes = _hashed(initials)
    try:
        _apply(directory, path, planned, initials, hashes, taken, applied, progress)
    finally:
        hashes.close()  # a failure cancels the hashing still queued
    return {"file": str(path), "dry_run": False, "rows": sorted(applied, key=lambda doc: doc["row"])}


def _apply(
    directory: Directory,
    path: Path | str,
    planned: list[Plan],
    initials: list[str],
    hashes: Iterator[str],
    taken: _Taken,
    applied: list[dict[str, Any]],
    progress: Callable[[int, int], None] | None,
) -> None:
    total = len(planned)
    for index, (plan, hashed) in enumerate(zip(planned, hashes, strict=True)):
        try:
            if plan.kind == "personal" and taken.used(plan.address):
                raise AccountError(
                    f"address {plan.address} was taken after the file was checked: import the rest again"
                )
            _create(directory, plan, hashed)
        except (DirectoryError, AccountError) as exc:
            rest = sorted(p.row for p in planned[index + 1 :] if p.row is not None)
            report = {
                "file": str(path),
                "dry_run": False,
                "rows": sorted(applied, key=lambda doc: doc["row"]),
                "failed": {"row": plan.row, "address": plan.address, "error": str(exc)},
                "not_applied": rest,
            }
            done = ", ".join(str(doc["row"]) for doc in report["rows"]) or "none"
            raise ImportApplyError(
                f"{path}: row {plan.row} ({plan.address}) failed: {exc}; rows applied: {done}; "
                f"{len(rest)} rows after it were not applied",
                report,
            ) from None
        applied.append(plan.as_dict(initials[index]))
        if progress:
            progress(index + 1, total)
