"""Reading elements of AnnData HDF5 files: ``anndata.io.read_elem``, faster.

The store reads the ``obs``, ``var`` and ``uns`` of its own files back many times (to
build its catalog, to open an Effects file, to import a release). AnnData's reader
spends most of that time dispatching each element through its registry and reading
each HDF5 attribute three times; a ``obs`` of 30 categorical columns takes tens of
milliseconds. :func:`read_element` decodes the encodings that the package's files hold
(data frames, categoricals, string and numeric arrays, nullable integers and booleans,
mappings, scalars) directly, with one read per attribute, and hands every other
element to :func:`anndata.io.read_elem`. It returns what AnnData returns: the same
types, dtypes, index and column order (``tests/io/test_h5read.py`` compares the two
on every encoding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import pandas as pd


def _attr(obj: h5py.HLObject, name: str) -> Any:
    """An HDF5 attribute as AnnData reads it: fixed-length strings decoded, ``""`` if absent."""
    try:
        value = obj.attrs[name]
    except KeyError:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return [v.decode("utf-8") for v in value]
    return value


def _array(node: h5py.Group | h5py.Dataset) -> Any:
    """A part of an element whose encoding its parent fixes (the codes and categories of
    a categorical, the values and mask of a nullable array, a data frame's index):
    an array, of strings when HDF5 stores strings; else the element as AnnData reads it."""
    if not isinstance(node, h5py.Dataset):
        return read_element(node)
    if h5py.check_string_dtype(node.dtype) is not None:
        return node.asstr()[()]
    return node[()]


def _dataframe(group: h5py.Group) -> pd.DataFrame:
    columns = list(_attr(group, "column-order"))
    idx_key = _attr(group, "_index")
    df = pd.DataFrame(
        {k: read_element(group[k]) for k in columns},
        index=_array(group[idx_key]),
        columns=columns if columns else None,
    )
    if idx_key != "_index":
        df.index.name = idx_key
    return df


def _categorical(group: h5py.Group) -> pd.Categorical:
    return pd.Categorical.from_codes(
        codes=_array(group["codes"]),
        categories=_array(group["categories"]),
        ordered=bool(_attr(group, "ordered")),
    )


def _nullable(array_type: Any) -> Callable[[h5py.Group], Any]:
    def read(group: h5py.Group) -> Any:
        return array_type(_array(group["values"]), mask=_array(group["mask"]))

    return read


def _mapping(group: h5py.Group) -> dict[str, Any]:
    return {k: read_element(v) for k, v in dict(group).items()}


#: Readers of groups and of datasets, by (encoding-type, encoding-version).
_GROUP_READERS: dict[tuple[str, str], Callable[[h5py.Group], Any]] = {
    ("dataframe", "0.2.0"): _dataframe,
    ("categorical", "0.2.0"): _categorical,
    ("nullable-integer", "0.1.0"): _nullable(pd.arrays.IntegerArray),
    ("nullable-boolean", "0.1.0"): _nullable(pd.arrays.BooleanArray),
    ("dict", "0.1.0"): _mapping,
}
_DATASET_READERS: dict[tuple[str, str], Callable[[h5py.Dataset], Any]] = {
    ("array", "0.2.0"): lambda ds: ds[()],
    ("string-array", "0.2.0"): lambda ds: ds.asstr()[()],
    ("numeric-scalar", "0.2.0"): lambda ds: ds[()].item(),
    ("string", "0.2.0"): lambda ds: ds.asstr()[()],
}


def read_element(node: h5py.Group | h5py.Dataset) -> Any:
    """Read one element of an AnnData HDF5 file, as :func:`anndata.io.read_elem` does.

    Parameters
    ----------
    node
        An h5py group or dataset written by AnnData (``f["obs"]``, ``f["uns"]["x"]``).

    Returns
    -------
    The decoded element: a :class:`pandas.DataFrame`, :class:`pandas.Categorical`,
    NumPy array, mapping or scalar, identical to AnnData's answer.
    """
    spec = (_attr(node, "encoding-type"), _attr(node, "encoding-version"))
    if isinstance(node, h5py.Group):
        group_reader = _GROUP_READERS.get(spec)
        if group_reader is not None:
            return group_reader(node)
    else:
        dataset_reader = _DATASET_READERS.get(spec)
        if dataset_reader is not None:
            return dataset_reader(node)
    from anndata.io import read_elem

    return read_elem(node)
