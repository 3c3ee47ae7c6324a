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
