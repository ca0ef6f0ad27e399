"""plan: (files on disk, ledger rows) → one status per version, what to apply, what to roll back (no database)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from dbmigrations import plan
from dbmigrations.discovery import discover
from dbmigrations.exceptions import NotReversible
from dbmigrations.ledger import LedgerRow
from dbmigrations.plan import State
from tests.conftest import migration, write_files

T0 = datetime(2024, 1, 1, 12, 0)


def files(directory, *names: str):
    write_files(directory, {f"{name}.sql": migration(name, f"CREATE TABLE t{name[:4]} (id int);") for name in names})
    return discover(directory)


def row(version: str, *, minutes: int = 0, checksum: str | None = None) -> LedgerRow:
    return LedgerRow(version=version, applied_at=T0 + timedelta(minutes=minutes), checksum=checksum, description=None)


def states(entries) -> list[tuple[str, str, bool]]:
    return [(e.version, e.state.value, e.out_of_order) for e in entries]


def test_every_state_by_number(migrations_dir):
    on_disk = files(migrations_dir, "001_a", "002_b", "004_d", "005_e")
    a, b, *_ = on_disk
    entries = plan.status(
        on_disk,
        [
            row("001", checksum=a.checksum),
            row("002", checksum="0" * 64),
            row("003", minutes=1),
            row("004", minutes=2, checksum=None),
        ],
    )
    assert states(entries) == [
        ("001", "applied", False),
        ("002", "modified", False),
        ("003", "missing", False),
        ("004", "applied", False),
        ("005", "pending", False),
    ]
    assert [e.name for e in entries] == ["001_a", "002_b", "003", "004_d", "005_e"]
    assert entries[2].file is None and entries[4].row is None
    # A row without a checksum (the spec's table filled by another runner) has nothing to compare: applied.
    assert entries[3].state == State.APPLIED
    assert [e.version for e in plan.drifted(entries)] == ["002"]
    assert [e.version for e in plan.missing(entries)] == ["003"]


def test_versions_compare_as_numbers(migrations_dir):
    on_disk = files(migrations_dir, "0002_b", "010_c", "1000_d")
    entries = plan.status(on_disk, [row("002", checksum=on_disk[0].checksum), row("0010", minutes=1)])
    assert states(entries) == [("0002", "applied", False), ("010", "applied", False), ("1000", "pending", False)]


def test_pending_older_than_the_newest_applied_is_out_of_order(migrations_dir):
    on_disk = files(migrations_dir, "001_a", "002_b", "003_c", "004_d")
    a, _, c, _ = on_disk
    entries = plan.status(on_disk, [row("001", checksum=a.checksum), row("003", minutes=1, checksum=c.checksum)])
    assert states(entries) == [
        ("001", "applied", False),
        ("002", "pending", True),
        ("003", "applied", False),
        ("004", "pending", False),
    ]


def test_an_applied_row_recorded_after_a_higher_version_is_out_of_order(migrations_dir):
    on_disk = files(migrations_dir, "001_a", "002_b", "003_c")
    rows = [row(f.version, minutes=m, checksum=f.checksum) for f, m in zip(on_disk, (0, 10, 5))]  # 002 merged late
    assert states(plan.status(on_disk, rows)) == [
        ("001", "applied", False),
        ("002", "applied", True),
        ("003", "applied", False),
    ]


def test_pending_stops_at_the_target(migrations_dir):
    entries = plan.status(files(migrations_dir, "001_a", "002_b", "010_c"), [])
    assert [e.version for e in plan.pending(entries)] == ["001", "002", "010"]
    assert [e.version for e in plan.pending(entries, target=2)] == ["001", "002"]
    assert [e.version for e in plan.pending(entries, target=9)] == ["001", "002"]


@pytest.fixture
def applied(migrations_dir):
    on_disk = files(migrations_dir, "001_a", "002_b", "003_c", "004_d")
    rows = [row(f.version, minutes=i, checksum=f.checksum) for i, f in enumerate(on_disk[:3])]
    return plan.status(on_disk, rows)


@pytest.mark.parametrize(
    "options, versions",
    [
        ({}, ["003"]),
        ({"steps": 2}, ["003", "002"]),
        ({"steps": 3}, ["003", "002", "001"]),
        ({"to": 1}, ["003", "002"]),
        ({"to": 3}, []),
        ({"to": 4}, []),  # a pending version: nothing above it is applied
        ({"to": 0}, ["003", "002", "001"]),
    ],
)
def test_to_unapply_newest_first(applied, options, versions):
    assert [e.version for e in plan.to_unapply(applied, **options)] == versions


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "--steps 0: must be at least 1"),
        ({"steps": 4}, "--steps 4: only 3 migration(s) are applied"),
        ({"to": 7}, "--to 7: no migration file or ledger row has that version"),
    ],
)
def test_to_unapply_refuses_what_names_nothing(applied, options, message):
    with pytest.raises(NotReversible, match=re.escape(message)) as error:
        plan.to_unapply(applied, **options)
    assert error.value.exit_code == 2


def test_nothing_applied_is_nothing_to_unapply(migrations_dir):
    assert plan.to_unapply(plan.status(files(migrations_dir, "001_a"), [])) == []


def test_entry_as_dict_names_both_sides(migrations_dir):
    [a, b] = files(migrations_dir, "001_a", "002_b")
    applied_row = LedgerRow(
        version="001",
        applied_at=T0,
        checksum=a.checksum,
        description="by the runner",
        execution_ms=12,
        filename="001_a.sql",
        applied_by="ci",
    )
    first, second = plan.status([a, b], [applied_row])
    data = first.as_dict()
    assert {
        k: data[k]
        for k in (
            "version",
            "name",
            "state",
            "file",
            "checksum",
            "applied_checksum",
            "applied_at",
            "execution_ms",
            "applied_by",
            "has_down",
        )
    } == {
        "version": "001",
        "name": "001_a",
        "state": "applied",
        "file": str(a.path),
        "checksum": a.checksum,
        "applied_checksum": a.checksum,
        "applied_at": "2024-01-01T12:00:00",
        "execution_ms": 12,
        "applied_by": "ci",
        "has_down": False,
    }
    assert second.as_dict()["state"] == "pending" and second.as_dict()["applied_at"] is None
