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
