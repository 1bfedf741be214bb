"""Reliability tests: one test per fault of the store and the inputs (docs/reliability.md).

Each test reproduces its fault on purpose and records what it expected and what it
observed with the ``fault`` fixture (tests/conftest.py); the session ends with a table of
every fault, so a reader of the test log sees at a glance what was tried and what happened.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._forker import Forker
from ._states import build_two_states


@pytest.fixture(scope="session")
def two_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Plan A's store with plan B's tasks cached, and uninterrupted stores of A and B
    (``_states.build_two_states``): built once, read-only; the tests work on copies."""
    return build_two_states(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker]:
    """Runs the fault tests' scripts, each in a fork of one process that has imported the
    store code (``_forker.py``): a killed update starts without 2 s of imports."""
    f = Forker(tmp_path_factory.mktemp("forks"))
    yield f
    f.close()
