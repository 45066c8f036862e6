"""The media fuzz harness: send each mutated file through `check`, `works add` and `verify`
(the HTTP API for every case, the CLI for every fifth) and judge each answer.

An answer passes when it is a 2xx or a 4xx with a JSON message (the CLI: exit 0, 1 for an
unverified file, or 2 with a message), took under HANG_S, logged no traceback, and, when the
input was refused, left the database and the data directory exactly as they were.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from fastapi.testclient import TestClient

from tests.fuzz.mutate import mutate
from tests.fuzz.seeds import Seed

HANG_S = 30
SUFFIXES = [".mp4", ".mov", ".webm", ".mkv", ".png", ".jpg", ".webp", ".bin", ""]


@dataclass
class Case:
    index: int
    seed: str
    mutation: str
    name: str
    data: bytes


@dataclass
class Failure:
    case: Case
    target: str
    problem: str


@dataclass
class Report:
    cases: int = 0
    calls: Counter = field(default_factory=Counter)  # target -> calls
    answers: Counter = field(default_factory=Counter)  # (target, status or exit code) -> n
    slowest_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        by_target: dict[str, list[str]] = {}
        for (target, code), n in sorted(self.answers.items()):
            by_target.setdefault(target, []).append(f"{code}: {n}")
        lines = [f"{self.cases} inputs, {sum(self.calls.values())} calls, slowest "
                 f"{self.slowest_s:.1f} s, {len(self.failures)} failures"]
        lines += [f"  {t}: " + ", ".join(v) for t, v in by_target.items()]
        # One line per kind of failure (target and the problem's first words), with an example.
        kinds: dict[tuple[str, str], list[Failure]] = {}
        for f in self.failures:
            kinds.setdefault((f.target, f.problem[:60]), []).append(f)
        for (target, _), fs in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
            f = fs[0]
            lines.append(f"  FAIL x{len(fs)} {target}: {f.problem[:300]} (e.g. case {f.case.index}, "
                         f"{f.case.seed}: {f.case.mutation})")
        return "\n".join(lines)


def cases(seeds: list[Seed], odd: list[Seed], n: int, seed: int,
          only: set[int] | None = None) -> Iterator[Case]:
    """n cases, reproducible from seed: every odd file once as it is, then mutations of any
    seed (a case's own rng is seeded by (seed, index), so one case replays alone: with only,
    just those indices are made)."""
    pool = seeds + odd
    for i in range(n):
        if only is not None and i not in only:
            continue
        rng = np.random.default_rng([seed, i])
        if i < len(odd):
            s, data, what = odd[i], odd[i].data, "as made"
        else:
            s = pool[int(rng.integers(0, len(pool)))]
            data, what = mutate(s.data, s.fmt, rng)
        stem, _, suffix = s.name.rpartition(".")
        if rng.random() < 0.1:  # a misleading suffix: the sniffing must not trust names
            suffix = SUFFIXES[int(rng.integers(0, len(SUFFIXES)))].lstrip(".")
        yield Case(i, s.name, what, f"{stem}-{i}.{suffix}" if suffix else f"{stem}-{i}", data)


class _Hang(Exception):
    pass


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def fire(signum, frame):  # noqa: ARG001
        raise _Hang(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class _Tracebacks(logging.Handler):
    """Counts log records that carry an exception: a handled 4xx must not log one."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


class Fuzzer:
    """Runs cases against one app (admin and generator keys) and the in-process CLI."""

    def __init__(self, *, client: TestClient, admin_key: str, generator_key: str,
                 cli: Callable[..., object], database_url: str, data_dir: Path, tmp: Path,
                 cli_every: int = 5) -> None:
        self.client, self.cli, self.tmp = client, cli, tmp
        self.admin = {"X-API-Key": admin_key}
        self.generator = {"X-API-Key": generator_key}
        self.database_url, self.data_dir, self.cli_every = database_url, data_dir, cli_every
        self.report = Report()
        self.logged = _Tracebacks()

    def run(self, all_cases: Iterator[Case]) -> Report:
        root = logging.getLogger()
        root.addHandler(self.logged)
        # One connection for every state(), in autocommit (each count sees what is committed):
        # a connection per call cost more than the cases themselves on a loaded machine.
        with psycopg.connect(self.database_url, autocommit=True) as self.conn:
            # The tables do not change while it runs; their rows are counted each time.
            tables = [r[0] for r in self.conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            self.count_sql = " UNION ALL ".join(
                f"SELECT '{t}', count(*) FROM \"{t}\"" for t in tables)
            try:
                for case in all_cases:
                    self.report.cases += 1
                    self.run_case(case)
            finally:
                root.removeHandler(self.logged)
        return self.report

    def run_case(self, case: Case) -> None:
        upload = {"file": (case.name, case.data, "application/octet-stream")}
        meta = {"owner": "Fuzz Owner", "title": f"fuzz {case.index}", "policy": "block"}
        self.run_http(case, "api check", lambda: self.client.post(
            "/v1/checks", files=upload, headers=self.generator))
        self.run_http(case, "api works add", lambda: self.client.post(
            "/v1/works", files=upload, data=meta, headers=self.admin))
        self.run_http(case, "api verify", lambda: self.client.post(
            "/v1/verify", files=upload, headers=self.generator))
        if case.index % self.cli_every == 0:
            path = self.tmp / case.name
            path.write_bytes(case.data)
            try:
                self.run_cli(case, "cli works add", ("works", "add", path, "--owner", "Fuzz Owner",
                                                   "--title", f"fuzz cli {case.index}",
                                                   "--policy", "block"), ok={0})
                self.run_cli(case, "cli verify", ("verify", path, "--json"), ok={0, 1})
            finally:
                path.unlink(missing_ok=True)

    def timed(self, case: Case, target: str, fn: Callable[[], object]) -> tuple[object, bool]:
        """Run fn under the hang deadline; (result or None, whether it may have written)."""
        self.report.calls[target] += 1
        before, n_tb = self.state(), len(self.logged.records)
        t0 = time.perf_counter()
        try:
            with _deadline(HANG_S):
                result = fn()
        except _Hang as e:
            self.fail(case, target, str(e))
            return None, False
        except Exception as e:  # noqa: BLE001 - the point is to catch whatever escapes
            self.fail(case, target, f"raised {type(e).__name__}: {e}")
            return None, False
        finally:
            self.report.slowest_s = max(self.report.slowest_s, time.perf_counter() - t0)
        if len(self.logged.records) > n_tb:
            rec = self.logged.records[-1]
            self.fail(case, target, f"logged {logging.getLevelName(rec.levelno)}: "
                                     f"{rec.getMessage()[:200]}")
        self.before = before
        return result, True

    def run_http(self, case: Case, target: str, fn: Callable[[], object]) -> None:
        r, ran = self.timed(case, target, fn)
        if not ran:
            return
        self.report.answers[(target, r.status_code)] += 1
        if r.status_code >= 500:
            self.fail(case, target, f"HTTP {r.status_code}: {r.text[:200]}")
        elif r.status_code >= 400:
            detail = r.json().get("detail") if r.headers.get("content-type", "").startswith(
                "application/json") else None
            if not detail:
                self.fail(case, target, f"HTTP {r.status_code} without a message: {r.text[:200]}")
            self.check_unchanged(case, target)

    def run_cli(self, case: Case, target: str, args: tuple, ok: set[int]) -> None:
        r, ran = self.timed(case, target, lambda: self.cli(*args))
        if not ran:
            return
        self.report.answers[(target, r.exit_code)] += 1
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        if crashed or "Traceback" in r.output:
            self.fail(case, target, f"exit {r.exit_code}, {type(r.exception).__name__}: "
                                     f"{r.exception}")
        elif r.exit_code not in ok | {2}:
            self.fail(case, target, f"exit {r.exit_code}: {r.output[-200:]}")
        elif r.exit_code == 2:
            if not r.output.strip():
                self.fail(case, target, "exit 2 without a message")
            self.check_unchanged(case, target)

    def check_unchanged(self, case: Case, target: str) -> None:
        after = self.state()
        if after != self.before:
            diff = sorted(set(after.items()) ^ set(self.before.items()))[:6]
            self.fail(case, target, f"refused, yet the database or data directory changed: {diff}")

    def state(self) -> dict[str, object]:
        """Row counts of every table, and every file under the data directory with its size."""
        state: dict[str, object] = {f"table {t}": n for t, n in self.conn.execute(self.count_sql)}
        for p in self.data_dir.rglob("*"):
            if p.is_file():
                state[f"file {p.relative_to(self.data_dir)}"] = p.stat().st_size
        return state

    def fail(self, case: Case, target: str, problem: str) -> None:
        self.report.failures.append(Failure(case, target, problem))
