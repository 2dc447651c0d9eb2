from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from localsite import LocalSite  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def site():
    """A real HTTP server on 127.0.0.1, empty until the test adds routes."""
    s = LocalSite().start()
    yield s
    s.stop()


@pytest.fixture
def fixture_bytes():
    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read
