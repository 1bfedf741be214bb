"""``read_element`` answers as ``anndata.io.read_elem`` does, on every encoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.io import read_elem, write_elem
from scipy import sparse

from conftest import assert_same_element as assert_same
from perturbridge.io._h5read import read_element


def _frame() -> pd.DataFrame:
    n = 5
    return pd.DataFrame(
        {
            "text": pd.Categorical(["a", "b", "a", None, "c"]),
            "ordered": pd.Categorical(["lo", "hi", "lo", "hi", "lo"], ["lo", "hi"], ordered=True),
            "numbers_as_categories": pd.Categorical([0.1, 1.0, 0.1, 10.0, np.nan]),
            "strings": np.array(["x", "y", "z", "", "ünï"], dtype=object),
            "floats": np.array([0.5, np.nan, 2.0, -1.0, 3.25]),
            "ints": np.arange(n, dtype=np.int64),
            "int32": np.arange(n, dtype=np.int32),
            "bools": np.array([True, False, True, True, False]),
            "nullable_int": pd.array([1, None, 3, 4, None], dtype="Int64"),
            "nullable_bool": pd.array([True, None, False, True, None], dtype="boolean"),
            "nullable_str": pd.array(["p", None, "q", "r", None], dtype="string"),
        },
        index=pd.Index([f"row{i}" for i in range(n)]),
    )


def _write(path: Path, elements: dict[str, Any]) -> None:
    with h5py.File(path, "w") as f, ad.settings.override(allow_write_nullable_strings=True):
        for key, value in elements.items():
            write_elem(f, key, value)


ELEMENTS: dict[str, Any] = {
    "frame": _frame(),
    "named_index": _frame().rename_axis("cell"),
    "no_columns": pd.DataFrame(index=pd.Index(["a", "b"])),
    "no_rows": _frame().iloc[:0],
    "mapping": {
        "number": 3,
        "float": 2.5,
        "text": "a string",
        "array": np.arange(4.0),
        "strings": np.array(["u", "v"], dtype=object),
        "nested": {"frame": _frame().iloc[:2], "flag": True},
        "sparse": sparse.csr_matrix(np.eye(3)),
    },
    "categorical": pd.Categorical(["a", "b"]),
    "sparse": sparse.csr_matrix(np.eye(4)),
}


@pytest.mark.parametrize("key", list(ELEMENTS))
def test_every_encoding_reads_as_anndata_reads_it(tmp_path: Path, key: str) -> None:
    path = tmp_path / "elements.h5"
    _write(path, ELEMENTS)
    with h5py.File(path, "r") as f:
        assert_same(read_element(f[key]), read_elem(f[key]), key)


def test_a_written_anndata_file_reads_as_anndata_reads_it(tmp_path: Path) -> None:
    obs = _frame()
    adata = ad.AnnData(
        X=np.ones((len(obs), 3), dtype=np.float32),
        obs=obs,
        var=pd.DataFrame({"symbol": ["G1", "G2", "G3"]}, index=["g1", "g2", "g3"]),
        uns={"provenance": {"step": "test", "params": {"seed": 0}}, "table": _frame()},
    )
    path = tmp_path / "a.h5ad"
    with ad.settings.override(allow_write_nullable_strings=True):
        adata.write_h5ad(path, compression="gzip")
    with h5py.File(path, "r") as f:
        for key in ("obs", "var", "uns", "X"):
            assert_same(read_element(f[key]), read_elem(f[key]), key)
