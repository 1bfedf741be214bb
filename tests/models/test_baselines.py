"""Baselines on hand-made data: group means by hand, Tanimoto against RDKit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from perturbridge.models.baselines import (
    BASELINES,
    list_baselines,
    morgan_bits,
    predict_baseline,
    tanimoto_matrix,
)

from ._arrays import ArrayData, conditions

NAN = np.nan
SMILES = {
    "benzene": "c1ccccc1",
    "toluene": "Cc1ccccc1",
    "ethylbenzene": "CCc1ccccc1",
    "hexane": "CCCCCC",
    "heptane": "CCCCCCC",
}


def _data():
    recs = [
        ("A", "x", "toluene", 1.0, 24.0),  # 0 train
        ("A", "x", "hexane", 1.0, 24.0),  # 1 train
        ("A", "x", "toluene", 10.0, 24.0),  # 2 train
        ("A", "y", "hexane", 1.0, 24.0),  # 3 train
        ("B", "x", "benzene", 1.0, 24.0),  # 4 train (other dataset)
        ("A", "x", "ethylbenzene", 1.0, 24.0),  # 5 test: nearest toluene at 1 uM
        ("A", "x", "heptane", 10.0, 24.0),  # 6 test: no hexane at 10 uM -> nearest dose
        ("A", "z", "benzene", 1.0, 24.0),  # 7 test: context z unseen -> dataset level
        ("C", "x", "unknown", 1.0, 24.0),  # 8 test: no structure, no dataset
    ]
    vals = np.array(
        [
            [1.0, 2.0, NAN],
            [3.0, NAN, 5.0],
            [10.0, 20.0, 30.0],
            [-1.0, -2.0, -3.0],
            [7.0, 7.0, 7.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    structures = pd.DataFrame({"compound": list(SMILES), "smiles": list(SMILES.values())})
    return ArrayData(conditions(recs), vals), structures


TRAIN = np.array([0, 1, 2, 3, 4])
TEST = np.array([5, 6, 7, 8])


def test_registry_lists_itself():
    assert (
        set(list_baselines()["name"])
        == set(BASELINES)
        == {
            "zero",
            "train_mean",
            "nearest_tanimoto",
        }
    )
    with pytest.raises(KeyError, match="unknown baseline 'mean'"):
        predict_baseline("mean", *_data()[:1], TRAIN, TEST)


def test_zero():
    data, _ = _data()
    p = predict_baseline("zero", data, TRAIN, TEST)
    assert p.values.shape == (4, 3) and not p.values.any()
    assert p.counts() == {"zero": 4}


def test_train_mean_by_hand():
    data, _ = _data()
    p = predict_baseline("train_mean", data, TRAIN, TEST)
    # A × x: rows 0, 1, 2 -> gene0 (1+3+10)/3, gene1 (2+20)/2, gene2 (5+30)/2
    ax = [14 / 3, 11.0, 17.5]
    # A (dataset): rows 0..3 -> (1+3+10-1)/4, (2+20-2)/3, (5+30-3)/3
    a = [13 / 4, 20 / 3, 32 / 3]
    np.testing.assert_allclose(p.values[0], ax, rtol=1e-6)
    np.testing.assert_allclose(p.values[1], ax, rtol=1e-6)
    np.testing.assert_allclose(p.values[2], a, rtol=1e-6)
    np.testing.assert_array_equal(p.values[3], 0.0)
    assert list(p.how) == [
        "dataset × context",
        "dataset × context",
        "dataset",
        "zero: no training row of the dataset",
    ]


def test_train_mean_fills_unmeasured_gene_from_the_dataset():
    recs = [("A", "x", "a", 1.0, 1.0), ("A", "y", "b", 1.0, 1.0), ("A", "x", "c", 1.0, 1.0)]
    data = ArrayData(conditions(recs), np.array([[1.0, NAN], [3.0, 4.0], [0.0, 0.0]]))
    p = predict_baseline("train_mean", data, np.array([0, 1]), np.array([2]))
    np.testing.assert_allclose(p.values[0], [1.0, 4.0])


def test_train_mean_reads_in_blocks():
    data, _ = _data()
    a = predict_baseline("train_mean", data, TRAIN, TEST, block_rows=2)
    assert data.reads == 3
    b = predict_baseline("train_mean", data, TRAIN, TEST)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


def test_tanimoto_matches_rdkit():
    names = list(SMILES)
    bits = morgan_bits([SMILES[n] for n in names])
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(SMILES[n])) for n in names]
    want = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    np.testing.assert_allclose(tanimoto_matrix(bits, bits), want, rtol=1e-6)


def test_morgan_bad_smiles():
    with pytest.raises(ValueError, match="cannot be parsed by RDKit, first: \\['C1CC'\\]"):
        morgan_bits(["CCO", "C1CC"])


def test_nearest_tanimoto_levels():
    data, structures = _data()
    p = predict_baseline("nearest_tanimoto", data, TRAIN, TEST, structures=structures)
    vals = data._values
    # ethylbenzene -> toluene (same dataset/context/time/dose) = row 0, NaN gene from mean
    np.testing.assert_allclose(p.values[0], [1.0, 2.0, 17.5], rtol=1e-6)
    # heptane at 10 uM: no candidate at 10 uM with a structure but toluene (row 2); the
    # nearest compound at that dose is toluene, since hexane only has 1 uM
    np.testing.assert_allclose(p.values[1], vals[2])
    # benzene in A × z: no training row of context z -> same dataset: toluene nearest,
    # dose 1 uM -> row 0 (NaN gene filled with the dataset mean)
    np.testing.assert_allclose(p.values[2], [1.0, 2.0, 32 / 3], rtol=1e-6)
    np.testing.assert_array_equal(p.values[3], 0.0)
    assert list(p.how) == [
        "same dataset × context × time × dose",
        "same dataset × context × time × dose",
        "same dataset",
        "train_mean: no structure for the compound",
    ]


def test_nearest_tanimoto_needs_structures():
    data, _ = _data()
    with pytest.raises(ValueError, match="needs compound structures"):
        predict_baseline("nearest_tanimoto", data, TRAIN, TEST)
    with pytest.raises(KeyError, match="needs a 'smiles' column"):
        predict_baseline(
            "nearest_tanimoto", data, TRAIN, TEST, structures=pd.DataFrame({"compound": ["a"]})
        )


def test_nearest_tanimoto_relaxes_the_dose_then_takes_the_nearest_dose():
    recs = [
        ("A", "x", "toluene", 1.0, 24.0),
        ("A", "x", "hexane", 1.0, 24.0),
        ("A", "x", "hexane", 30.0, 24.0),
        ("A", "x", "heptane", 10.0, 24.0),  # no training row at 10 uM
    ]
    vals = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    data = ArrayData(conditions(recs), vals)
    structures = pd.DataFrame({"compound": list(SMILES), "smiles": list(SMILES.values())})
    p = predict_baseline(
        "nearest_tanimoto", data, np.array([0, 1, 2]), np.array([3]), structures=structures
    )
    # hexane is nearest to heptane; of its rows, 30 uM is nearer 10 uM in log dose
    np.testing.assert_allclose(p.values[0], [3.0, 3.0])
    assert p.how[0] == "same dataset × context × time"
