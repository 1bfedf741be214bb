"""convert_release_effects: rows that share a CID, dose and time but name different
conditions (two batches of one compound) are two contrasts, not padding."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium.release import convert_release_effects

GENES = [f"ENSG{i:011d}" for i in range(4)]


def _write(tmp_path: Path, obs: dict[str, list[object]], lfc: np.ndarray) -> Path:
    path = tmp_path / "ds" / "group_rep" / "X_de.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(obs, index=pd.Index(["a - DMSO", "b - DMSO"]))
    layers = {"logFC": lfc.astype(np.float32), "t": lfc.astype(np.float32)}
    ad.AnnData(obs=frame, var=pd.DataFrame(index=GENES), layers=layers).write_h5ad(path)
    return path


BASE: dict[str, list[object]] = {
    "cell_type": ["X", "X"],
    "pubchem_cid": ["12", "12"],
    "pert_dose_uM": [1.0, 1.0],
    "pert_time_h": [24.0, 24.0],
}


def test_named_conditions_with_one_cid_are_kept(tmp_path: Path) -> None:
    lfc = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    path = _write(tmp_path, {**BASE, "condition": ["X|BRD-1|1uM|24h", "X|BRD-2|1uM|24h"]}, lfc)
    conv = convert_release_effects(path, dataset="ds", mode="group", context="X")
    assert conv.effects.obs["condition"].astype(str).tolist() == [
        "X|BRD-1|1uM|24h",
        "X|BRD-2|1uM|24h",
    ]
    np.testing.assert_array_equal(conv.effects.layers["logFC"], lfc)
    assert conv.ledger.empty


def test_without_condition_column_the_same_key_still_clashes(tmp_path: Path) -> None:
    lfc = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    path = _write(tmp_path, dict(BASE), lfc)
    with pytest.raises(ValueError, match=r"repeat a condition key \(cell context, CID, dose, "):
        convert_release_effects(path, dataset="ds", mode="group", context="X")


def test_identical_rows_of_one_named_condition_are_padding(tmp_path: Path) -> None:
    lfc = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    path = _write(tmp_path, {**BASE, "condition": ["X|BRD-1|1uM|24h"] * 2}, lfc)
    conv = convert_release_effects(path, dataset="ds", mode="group", context="X")
    assert conv.effects.n_obs == 1
    assert conv.ledger["reason"].tolist() == ["duplicate_contrast"]


def test_gene_id_column_gives_the_genes(tmp_path: Path) -> None:
    """Trees written by export_release keep the store's gene ids in var["gene_id"]."""
    lfc = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    path = _write(tmp_path, {**BASE, "condition": ["c1", "c2"]}, lfc)
    adata = ad.read_h5ad(path)
    adata.var["gene_id"] = ["g1", "g2", "g3", "g4"]
    adata.var["symbol"] = ["A", "B", "C", "D"]
    adata.write_h5ad(path)
    eff = convert_release_effects(path, dataset="ds", mode="group", context="X").effects
    assert eff.var_names.tolist() == ["g1", "g2", "g3", "g4"]
    assert eff.var["ensembl_gene_id"].tolist() == GENES
    assert eff.var["symbol"].tolist() == ["A", "B", "C", "D"]
    assert "gene_id" not in eff.var


def test_gene_id_column_with_gaps_or_repeats_is_not_used(tmp_path: Path) -> None:
    lfc = np.zeros((2, 4))
    for ids in (["g1", None, "g3", "g4"], ["g1", "g1", "g3", "g4"]):
        path = _write(tmp_path, {**BASE, "condition": ["c1", "c2"]}, lfc)
        adata = ad.read_h5ad(path)
        adata.var["gene_id"] = pd.Categorical(ids)
        adata.write_h5ad(path)
        eff = convert_release_effects(path, dataset="ds", mode="group", context="X").effects
        assert eff.var_names.tolist() == GENES


def test_biology_columns_are_kept(tmp_path: Path) -> None:
    lfc = np.zeros((2, 4))
    obs: dict[str, list[object]] = {
        **BASE,
        "condition": ["c1", "c2"],
        "organism": ["Homo sapiens", None],
    }
    path = _write(tmp_path, {**obs, "sex": ["female", "female"]}, lfc)
    eff = convert_release_effects(path, dataset="ds", mode="group", context="X").effects
    assert eff.obs["organism"].tolist() == ["Homo sapiens", "unknown"]
    assert eff.obs["sex"].tolist() == ["female", "female"]
    assert eff.obs["biology_source"].tolist() == ["release file X_de.h5ad"] * 2
    assert "tissue" not in eff.obs  # absent in the file: left to the catalog's default
    path = _write(tmp_path, {**obs, "biology_source": ["DepMap", "DepMap"]}, lfc)
    eff = convert_release_effects(path, dataset="ds", mode="group", context="X").effects
    assert eff.obs["biology_source"].tolist() == ["DepMap", "DepMap"]
