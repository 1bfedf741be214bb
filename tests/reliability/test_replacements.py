"""Nothing that exists is replaced without asking: a reference store, a store's
datasets that a plan no longer lists, a built store that releases are imported into."""

from __future__ import annotations

from pathlib import Path

import pytest

from perturbridge.errors import PerturbridgeError


def test_refs_build_over_a_store_needs_force(tmp_path: Path, fault):
    from ids._fixtures import source_dir
    from perturbridge.ids.store import RefStore

    src, out = source_dir(tmp_path), tmp_path / "refs"
    RefStore.build(source_dir=src, out=out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(PerturbridgeError, match="is a reference store") as err:
        RefStore.build(source_dir=src, out=out)
    fault("refs build over a store", "refused without --force", str(err.value)[:80])
    assert (out / "manifest.json").read_text() == before
    assert RefStore.build(source_dir=src, out=out, overwrite=True).tables


def test_another_plan_does_not_remove_a_stores_datasets(tmp_path: Path, fault):
    from compendium._fixtures import write_counts, write_l1000, write_plan
    from perturbridge.compendium import Compendium, PlanError, build

    both = write_plan(tmp_path, l1000=write_l1000(tmp_path), counts=write_counts(tmp_path))
    build(both)
    other = write_plan(tmp_path, counts=write_counts(tmp_path), name="other.toml")
    with pytest.raises(PlanError, match=r"\['sim_l1000'\] that this plan does not list") as err:
        build(other)
    with Compendium.open(tmp_path / "store") as comp:
        names = sorted(comp.table("datasets")["dataset"])
    fault("a plan without a dataset of its store", "refused without --force",
          f"{str(err.value).splitlines()[-1][:70]}; store still has {names}")  # fmt: skip
    assert names == ["sim_counts", "sim_l1000"]


def test_import_release_adds_to_a_built_store(tmp_path: Path, fault):
    from compendium._fixtures import write_l1000, write_plan
    from perturbridge.compendium import Compendium, build, import_release
    from perturbridge.simulate.release import write_release_tree

    build(write_plan(tmp_path, l1000=write_l1000(tmp_path)))
    tree = write_release_tree(tmp_path / "release", seed=0)
    import_release(tree, tmp_path / "store")
    with Compendium.open(tmp_path / "store") as comp:
        names = sorted(comp.table("datasets")["dataset"])
    fault("import-release into a built store", "adds, keeps the built dataset", str(names))
    assert names == ["alpha", "beta", "gamma", "sim_l1000"]
