"""Where the external test data lives, and a clean skip when it is absent (a user's clone has no ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"


def needs(path: Path) -> Path:
    """``path`` if it exists, else skip the test: shared test data is optional."""
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test data)")
    return path
