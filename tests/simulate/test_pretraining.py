"""The pretraining simulator (perturbridge.simulate.pretraining): real molecules, the
planted compound latent (shared across datasets or not), a real store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from perturbridge.compendium import Compendium
from perturbridge.simulate import PretrainingDesign, simulate_pretraining_store
from perturbridge.simulate.pretraining import pretraining_molecules

SMALL = dict(n_datasets=3, n_compounds=40, n_contexts=2, n_genes=60, doses_uM=(1.0, 10.0))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain_shared")
    return simulate_pretraining_store(tmp / "store", design=PretrainingDesign(**SMALL, seed=5))


@pytest.fixture(scope="module")
def unshared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain_unshared")
    design = PretrainingDesign(**SMALL, seed=5, shared_across_datasets=False)
    return simulate_pretraining_store(tmp / "store", design=design)


def test_molecules_are_real_distinct_and_seeded():
    a = pretraining_molecules(50, seed=1)
    b = pretraining_molecules(50, seed=1)
    c = pretraining_molecules(50, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["inchikey"]) != set(c["inchikey"])
    assert a["inchikey"].is_unique
    for smiles, key, salt in a.itertuples(index=False):
        mol = Chem.MolFromSmiles(smiles)
        assert mol is not None
        assert Chem.MolToInchiKey(mol) == key  # recomputed independently of the generator
        assert salt != key and salt.split("-")[0] != key.split("-")[0]


def test_store_layout_and_compound_identity(shared):
    truth = shared.truth
    with Compendium.open(shared.store) as comp:
        cond = comp.conditions()
        genes = comp.genes()
    assert sorted(cond["dataset"].unique()) == ["sim_a", "sim_b", "sim_c"]
    assert list(genes["gene_id"]) == list(truth["genes"])
    n_per = truth["measured_compounds"].sum(axis=1) * SMALL["n_contexts"] * 2
    assert cond.groupby("dataset").size().tolist() == n_per.tolist()
    # every compound is measured somewhere, under its parent InChIKey
    assert set(cond["compound_parent_inchikey"]) == set(truth["compounds"])
    # the third dataset measures every tenth compound as its hydrochloride salt
    salt = cond[cond["compound_inchikey"] != cond["compound_parent_inchikey"]]
    assert set(salt["dataset"]) == {"sim_c"}
    assert salt["perturbagen"].str.endswith("HCl").all()
    s = shared.structures
    assert list(s.columns) == ["compound", "inchikey", "pubchem_cid", "name", "smiles"]
    assert set(s["compound"]) == set(truth["compounds"])


def test_structures_file_reads_back(shared, tmp_path):
    from perturbridge.models.data import read_structures

    back = read_structures(shared.write_structures(tmp_path / "structures.csv"))
    assert list(back["compound"]) == list(shared.structures["compound"])
    assert list(back["inchikey"]) == list(shared.structures["inchikey"])
    assert back["pubchem_cid"].tolist() == shared.structures["pubchem_cid"].tolist()


def test_values_are_the_planted_effect_plus_noise(shared):
    truth = shared.truth
    comps = list(truth["compounds"])
    with Compendium.open(shared.store) as comp:
        cond = comp.conditions(dataset=["sim_a", "sim_b"])
        x = np.asarray(comp.effects(cond).X)
    resid = []
    for i, row in enumerate(cond.itertuples(index=False)):
        d = ["sim_a", "sim_b"].index(row.dataset)
        k = list(truth["contexts"]).index(row.cell_context)
        c = comps.index(row.compound_parent_inchikey)
        w = row.pert_dose_uM / (row.pert_dose_uM + truth["ec50"][c])  # 24 h: time weight 1
        expected = w * truth["latent"][d, c] @ truth["loadings"][d, k]
        measured = truth["measured_genes"][d]
        assert np.isnan(x[i, ~measured]).all()
        resid.append(x[i, measured] - expected[measured])
        np.testing.assert_allclose(
            shared.effect(d, k, c, row.pert_dose_uM, 24.0), expected, rtol=1e-6
        )
    r = np.concatenate(resid)
    assert abs(r.mean()) < 0.02
    assert 0.28 < r.std() < 0.32  # noise 0.3
    assert truth["measured_genes"][1].mean() == pytest.approx(0.8, abs=0.02)


def _signatures(sim, dataset: str) -> pd.DataFrame:
    """Mean signature of each compound at the top dose over contexts (context-major)."""
    with Compendium.open(sim.store) as comp:
        cond = comp.conditions(dataset=dataset, dose=10.0)
        x = np.asarray(comp.effects(cond).X)
    frame = pd.DataFrame(x)
    frame["compound"] = cond["compound_parent_inchikey"].to_numpy()
    frame["context"] = cond["cell_context"].to_numpy()
    return frame.set_index(["compound", "context"])


def _cross_dataset_agreement(sim) -> float:
    """Median correlation of a compound's signature in sim_a and in sim_c (same context)."""
    a, c = _signatures(sim, "sim_a"), _signatures(sim, "sim_c")
    both = a.index.intersection(c.index)
    r = [np.corrcoef(a.loc[i].to_numpy(), c.loc[i].to_numpy())[0, 1] for i in both]
    return float(np.median(r))


def test_sharing_switch_controls_what_other_datasets_tell(shared, unshared):
    ts, tu = shared.truth, unshared.truth
    np.testing.assert_array_equal(ts["hidden"][0], ts["hidden"][2])
    assert not np.allclose(tu["hidden"][0], tu["hidden"][2])
    # the structure part is the same biology either way
    np.testing.assert_allclose(ts["structure"], tu["structure"])
    on, off = _cross_dataset_agreement(shared), _cross_dataset_agreement(unshared)
    assert on > 0.5
    assert off < on - 0.2


def test_fingerprint_share_is_the_explained_variance(tmp_path):
    mols = pretraining_molecules(200, seed=0)
    from perturbridge.simulate.pretraining import _plant

    for share in (0.0, 0.4, 1.0):
        design = PretrainingDesign(n_compounds=200, n_genes=10, fingerprint_share=share)
        t = _plant(design, mols)
        z, s = t["latent"][0], t["structure"]
        # least squares of the latent on the structure part (independent of how it was mixed)
        beta, *_ = np.linalg.lstsq(s, z, rcond=None)
        explained = 1 - ((z - s @ beta) ** 2).sum() / ((z - z.mean(0)) ** 2).sum()
        assert explained == pytest.approx(share, abs=0.08)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_compounds": 0}, "n_compounds must be >= 1"),
        ({"fingerprint_share": 1.5}, "fingerprint_share must be in"),
        ({"compounds_per_dataset": 0.0}, "compounds_per_dataset must be in"),
        ({"doses_uM": (0.0, 1.0)}, "doses_uM must be positive"),
        ({"n_compounds": 100_000}, "n_compounds must be <="),
    ],
)
def test_design_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretrainingDesign(**kwargs)


def test_release_folder_must_be_empty(tmp_path):
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "stale.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        simulate_pretraining_store(
            tmp_path / "store",
            design=PretrainingDesign(n_compounds=5),
            release_dir=tmp_path / "rel",
        )
