"""Reliability tests: one test per fault of the store and the inputs (docs/reliability.md).

Each test reproduces its fault on purpose and records what it expected and what it
observed with the ``fault`` fixture; the session ends with a table of every fault, so a
reader of the test log sees at a glance what was tried and what happened.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_ROWS: list[tuple[str, str, str, str]] = []


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Callable[[str, str, str], None]:
    """``fault(name, expected, observed)``: record one fault of this test for the table."""
    test = request.node.nodeid.split("::")[-1]

    def record(name: str, expected: str, observed: str) -> None:
        _ROWS.append((test, name, expected, observed))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ROWS:
        return
    tr = terminalreporter
    tr.section("reliability: fault, expected, observed")
    width = max(len(r[1]) for r in _ROWS)
    for _test, name, expected, observed in _ROWS:
        tr.write_line(f"{name:<{width}}  expected: {expected}  |  observed: {observed}")
