"""Fixtures of the compendium tests: small simulated inputs and one store built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._fixtures import write_counts, write_l1000, write_plan


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An L1000 GCT and a counts .h5ad, shared (read-only) by the tests."""
    folder = tmp_path_factory.mktemp("inputs")
    return {"l1000": write_l1000(folder), "counts": write_counts(folder)}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> dict[str, Path]:
    """A store built (in-process executor) from ``inputs``: the reference build."""
    from perturbridge.compendium import build

    folder = tmp_path_factory.mktemp("built")
    plan = write_plan(
        folder, l1000=inputs["l1000"], counts=inputs["counts"], extra="[executor]\nn_jobs = 1\n"
    )
    build(plan)
    return {"plan": plan, "store": folder / "store", "folder": folder}
