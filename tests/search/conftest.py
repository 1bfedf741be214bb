"""Fixtures of the search tests: a small simulated multi-dataset store (one per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from perturbridge.simulate import AgreementDesign, simulate_agreement_store

#: 3 datasets × 2 contexts × 12 compounds × 2 doses (24 h) = 144 conditions, 300 genes
DESIGN = AgreementDesign(
    n_datasets=3,
    n_contexts=2,
    n_compounds=12,
    doses=(1.0, 10.0),
    times=(24.0,),
    n_genes=300,
    separate=False,
)


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of :data:`DESIGN` (seed 1)."""
    return simulate_agreement_store(tmp_path_factory.mktemp("search") / "sim", DESIGN, seed=1)
