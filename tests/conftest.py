"""Shared fixtures: real public data in ../shared/data and the R limma oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def r_oracle() -> None:
    """Skip unless R with limma and statmod is available (the oracle of the DE tests)."""
    from perturbridge.de.r_limma import r_limma_status

    why = r_limma_status()
    if why is not None:
        pytest.skip(why)
