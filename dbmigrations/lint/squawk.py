"""squawk (PyPI ``squawk-cli``): PostgreSQL lock and production-safety rules, run over many files at once.

Files the runner executes in one transaction without a ``BEGIN;`` of their own go
to squawk with ``--assume-in-transaction``; wrapped files carry their ``BEGIN`` (so
squawk sees the transaction itself) and files with CONCURRENTLY run outside one.
That is one squawk process for most files and a second for those; the first starts
before our own rules run (a thread waits for it to start), so both work at the same
time. squawk spreads its files over the cores with worker threads of its own, so one
process gets them all (a process per core only added a start-up and more threads
competing with our rules). Output goes to a temporary file, not a pipe, so squawk
never blocks on a full pipe while we are busy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import orjson

from .. import conf
from ..exceptions import ConfigurationError
from .registry import ERROR, WARNING
from .report import Finding


def binary() -> str:
    """The squawk executable: next to this Python (the virtualenv's bin), else on PATH."""
    found = shutil.which("squawk", path=str(Path(sys.executable).parent)) or shutil.which("squawk")
    if not found:
        raise ConfigurationError("squawk is not installed: pip install squawk-cli (or lint with --no-squawk)")
    return found


def config_file() -> Path:
    """The project's squawk configuration: ``<BASE_DIR>/.squawk.toml`` (the rules it turns off, and why)."""
    return conf.base_dir() / ".squawk.toml"


def pg_version_text(server_version: int) -> str:
    """160004 → ``"16.4"`` (squawk's ``--pg-version``)."""
    return f"{server_version // 10000}.{server_version % 10000}"


class Run:
    """squawk processes under way; :meth:`findings` waits for them."""

    def __init__(self, groups: dict[bool, list[str]], pg_version: str | None = None):
        executable = binary()
        commands = []
        for assume, paths in groups.items():
            command = [
                executable,
                "--reporter",
                "json",
                "--assume-in-transaction" if assume else "--no-assume-in-transaction",
            ]
            if pg_version:
                command += ["--pg-version", pg_version]
            if config_file().is_file():
                command += ["--config", str(config_file())]
            commands += [[*command, *batch] for batch in _batches(paths)]
        self._jobs: list = []
        self._error: BaseException | None = None
        # Starting a process waits until it runs squawk: a few milliseconds, more on a busy machine.
        # A thread does that waiting, so our own rules start at once.
        self._starter = threading.Thread(target=self._start, args=(commands,), name="squawk", daemon=True)
        self._starter.start()

    def _start(self, commands: list[list[str]]) -> None:
        try:
            for command in commands:
                out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
                self._jobs.append((subprocess.Popen(command, stdout=out, stderr=err), out, err))
        except BaseException as error:  # raised in the caller's thread by _started()
            self._error = error

    def _started(self) -> None:
        self._starter.join()
        if isinstance(self._error, OSError):
            raise ConfigurationError(f"squawk could not start ({self._error.strerror or self._error})")
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Stop the processes and forget their output."""
        self._starter.join()
        for process, out, err in self._jobs:
            process.kill()
            process.wait()
            out.close()
            err.close()
        self._jobs = []

    def findings(self, paths: dict[str, Path], errors: set[str], skip: set[str]) -> list[Finding]:
        """squawk's findings as ours: 1-based lines (its JSON counts from 0), rules in ``errors`` as errors.

        ``paths`` maps the names given to squawk back to paths; files in ``skip`` are left out.
        """
        self._started()
        found: list[Finding] = []
        for process, out, err in self._jobs:
            code = process.wait()
            out.seek(0)
            err.seek(0)
            text, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
            out.close()
            err.close()
            try:
                rows = orjson.loads(text) if text.strip() else ([] if code == 0 else None)
            except orjson.JSONDecodeError:
                rows = None
            if not isinstance(rows, list):
                detail = (stderr.strip() or text.strip()).splitlines()[:1]
                raise ConfigurationError(f"squawk failed (exit {code}): {detail[0] if detail else 'no output'}")
            for row in rows:
                if row["file"] in skip:
                    continue
                rule, line = row.get("rule_name") or "squawk", (row.get("line") or 0) + 1
                end = row.get("line_end")
                found.append(
                    Finding(
                        paths.get(row["file"]) or Path(row["file"]),
                        line,
                        (row.get("column") or 0) + 1,
                        rule,
                        rule,
                        ERROR if rule in errors else WARNING,
                        (row.get("message") or "").strip(),
                        row.get("help"),
                        "squawk",
                        line if end is None else end + 1,
                    )
                )
        return found


# A command line has a length limit (about 32,000 characters on Windows; more elsewhere).
MAX_ARGUMENT_CHARS = 30_000 if os.name == "nt" else 500_000


def _batches(paths: list[str]) -> list[list[str]]:
    """``paths`` in as few consecutive parts as the command-line limit allows (one, for any usual project)."""
    batches, size = [], MAX_ARGUMENT_CHARS
    for path in paths:
        if size + len(path) + 1 > MAX_ARGUMENT_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += len(path) + 1
    return batches
