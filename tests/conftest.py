"""Shared fixtures. Prefect's test harness costs ~10 s, so it is started once per session, never per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Set before any Prefect import: no analytics ("database is locked" noise on SQLite), quiet logs.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip when this clone has no ../shared (a user's clone)."""
    p = SHARED.joinpath("data", *parts)
    if not p.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} (absent in this clone)")
    return p


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect API (SQLite) for the whole test session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# ---- no process left behind -------------------------------------------------------------------------------
# Every test stops what it starts; this checks it. At the end of the run, a process that did not exist when the
# run began and is still alive (after a grace period) fails the run if it is a descendant of pytest, or an orphan
# (re-parented to pid 1) that carries this run's mark in its environment (inherited by everything the tests
# start, so another run's processes on the same machine are never taken for ours). Found this way: a
# `prefect server start` (the ephemeral server of an `lmpipe run` subprocess that a test killed with SIGKILL)
# outliving `make test`. Leftovers are listed, then killed, so the machine is clean for the next run.
_MARK = "LMPIPE_TEST_RUN"
_LEFTOVER_GRACE_S = 15.0
_BEFORE: set[int] = set()


def _marked(pid: int, token: str) -> bool:
    try:
        return f"{_MARK}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, command line) of every process this machine shows in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), fields[0], cmd.strip())
    return table


def _left_over() -> dict[int, str]:
    table, me = _processes(), os.getpid()

    def descendant(pid: int) -> bool:
        seen = set()
        while pid in table and pid not in seen:
            seen.add(pid)
            pid = table[pid][0]
            if pid == me:
                return True
        return False

    out = {}
    for pid, (ppid, state, cmd) in table.items():
        if pid in _BEFORE or pid == me or state == "Z":
            continue
        # The fork server and resource tracker of this very process end with it; any other multiprocessing
        # process (a pool's fork server orphaned by a flow run that was killed, re-parented to pid 1) is a leak.
        if ppid == me and "from multiprocessing." in cmd:
            continue
        if descendant(pid) or (ppid == 1 and _marked(pid, os.environ[_MARK])):
            out[pid] = cmd[:160]
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    import uuid

    os.environ[_MARK] = uuid.uuid4().hex
    _BEFORE.update(_processes())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import signal
    import sys
    import time

    if "flows.executor" in sys.modules:  # the shared process pool of in-process flow runs (stopped at exit)
        sys.modules["flows.executor"].shutdown_pool()
    deadline = time.time() + _LEFTOVER_GRACE_S
    left = _left_over()
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = _left_over()
    if not left:
        return
    lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(left.items()))
    sys.stderr.write(f"\nprocesses left running by the tests (killed now):\n{lines}\n")
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
