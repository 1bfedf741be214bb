"""The store's Effects files, complete: one reader, and the form a file takes in the store.

A store file (format 3) holds only what is stored nowhere else: the layers of the
consolidated arrays are read from its rows of ``zarr/<mode>.zarr``, and the layers
derived exactly from what is stored (see :mod:`perturbridge.compendium._footprint`) are
computed back. :class:`StoreEffects` joins the three for every reader of the store:
:meth:`~perturbridge.compendium.Compendium.effects` (layers not in the arrays), the
release and AnnData exports, and a store update that keeps a dataset. A file of an
earlier store format (every layer in the file), or a complete file of the task cache,
reads the same way: a layer the file holds is always read from it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...io import atomic_file, read_element
from ...io._atomic import _write_dense
from ...schema import EFFECT_LAYERS
from .._common import StoreError
from .._footprint import (
    CI_ULPS,
    P_FLOAT32_MIN,
    STDEV_SCALED,
    bh_per_fit,
    confidence_limits,
    decode_p64,
    encode_p,
    is_p_layer,
    p_bound,
    t_quantile,
)
from .._shards import ShardDigest, read_rows, row_sharded_layout
from ._layout import StoreLayout, read_manifest

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "DERIVED_LAYERS",
    "STORE_LAYERS",
    "ArrayRows",
    "StoreEffects",
    "StoreFiles",
    "read_effects_file",
    "store_file_layers",
    "write_store_file",
]

#: Layers a store file may leave out because they are derived exactly from what it
#: keeps (and the arrays hold).
DERIVED_LAYERS: tuple[str, ...] = (
    "CI.L",
    "CI.R",
    "adj.P.Value.across_all_contrasts",
    STDEV_SCALED,
)
#: ``uns`` key of a store file naming the layers it leaves out: ``arrays`` (read from
#: the consolidated arrays) and ``derived`` (computed back by :class:`StoreEffects`).
STORE_LAYERS = "store_layers"
_ULP32 = 2.0**-24
_ADJ = "adj.P.Value.across_all_contrasts"


@dataclass(frozen=True)
class ArrayRows:
    """Where a store file's rows are in the consolidated arrays of its mode.

    ``path``: ``zarr/<mode>.zarr``; ``start``: the array row of the file's first row
    (a file's rows are consecutive array rows, in file order); ``gene_col``: gene id →
    array column (the catalog's ``genes``); ``layers``: the arrays there;
    ``digests``: layer → shard number → :class:`ShardDigest` from the manifest (each
    shard read is checked against it), or ``None``.
    """

    path: Path
    start: int
    gene_col: pd.Series
    layers: tuple[str, ...]
    digests: Callable[[str], Mapping[int, ShardDigest] | None] | None = None


def _layer_order(names: Sequence[str]) -> list[str]:
    known = [n for n in (*EFFECT_LAYERS, STDEV_SCALED) if n in names]
    return known + sorted(n for n in names if n not in known)


def _uns_reader(uns: Any) -> Callable[..., Any]:
    """``entry(*keys)``: the element ``uns[k1][k2]...`` of an open ``uns`` group, read
    alone (``None`` when absent)."""

    def entry(*keys: str) -> Any:
        node = uns
        for key in keys:
            if node is None or key not in node:
                return None
            node = node[key]
        return read_element(node)

    return entry


class StoreEffects:
    """One Effects file of a store (or a complete Effects file), with every layer.

    Parameters
    ----------
    path
        The ``*_de.h5ad`` file.
    arrays
        Its rows of the consolidated arrays (``None``: a file that holds its layers).

    ``layers`` lists every layer the file gives back; :meth:`read` gives one (rows
    optional), :meth:`to_anndata` the whole Effects AnnData (rows and layers
    optional).
    """

    def __init__(self, path: Path, *, arrays: ArrayRows | None = None) -> None:
        import h5py

        self.path = Path(path)
        self.arrays = arrays
        with h5py.File(self.path, "r") as f:
            obs = f["obs"]
            self._n_obs = int(obs[str(obs.attrs["_index"])].shape[0])
            self.var: pd.DataFrame = read_element(f["var"])
            self.varm: dict[str, Any] = dict(read_element(f["varm"])) if "varm" in f else {}
            self.file_layers: tuple[str, ...] = tuple(f["layers"]) if "layers" in f else ()
            # what deriving layers needs of uns (the rest, provenance mostly, is read
            # when asked for: see ``uns``)
            uns = f.get("uns")
            entry = _uns_reader(uns)
            listed = entry(STORE_LAYERS) or {}
            self._fits = entry("ebayes_fits")
            self._confint = entry("perturbridge", "params", "confint")
        self._derived = tuple(str(v) for v in np.ravel(listed.get("derived", [])))
        self.source_sha256 = str(listed.get("source_sha256", ""))
        in_arrays = arrays.layers if arrays is not None else ()
        have = set(self.file_layers) | set(in_arrays)
        have |= {n for n in self._derived if self.can_derive(n, have)}
        self.layers: tuple[str, ...] = tuple(_layer_order(sorted(have)))
        self._cols = np.zeros(0, dtype=np.int64)
        if arrays is not None:
            cols = arrays.gene_col.reindex(self.var.index.astype(str)).to_numpy(dtype=float)
            if np.isnan(cols).any():
                raise StoreError(f"{self.path}: genes missing from the store's gene axis")
            self._cols = cols.astype(np.int64)
        #: the last fit's derived adj.P.Value.across_all_contrasts (rows read in blocks)
        self._fit_adj: dict[int, np.ndarray] = {}

    # --------------------------------------------------------------- derivation inputs

    @property
    def n_obs(self) -> int:
        return self._n_obs

    @functools.cached_property
    def uns(self) -> dict[str, Any]:
        """The file's ``uns`` without the store's own ``store_layers`` (read when first
        asked for)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            uns = dict(read_element(f["uns"])) if "uns" in f else {}
        uns.pop(STORE_LAYERS, None)
        return uns

    @functools.cached_property
    def obs(self) -> pd.DataFrame:
        """The file's ``obs`` (read when first asked for: reading layers needs only
        the number of rows)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            obs: pd.DataFrame = read_element(f["obs"])
        return obs

    def fit_bounds(self) -> list[tuple[int, int]] | None:
        """Rows ``(start, stop)`` of each fit (``uns["ebayes_fits"]``), ``None`` if unknown."""
        table = self._fits
        if not isinstance(table, pd.DataFrame) or table.empty:
            return None
        if not {"contrast_start", "contrast_stop"} <= set(table.columns):
            return None
        return [
            (int(a), int(b))
            for a, b in zip(table["contrast_start"], table["contrast_stop"], strict=True)
        ]

    def _per_gene(self, name: str) -> np.ndarray | None:
        """``name`` per gene × fit (``var`` for one fit, ``varm`` for several)."""
        bounds = self.fit_bounds()
        if bounds is None:
            return None
        if name in self.varm:
            v = np.asarray(self.varm[name], dtype=np.float64)
            return v if v.ndim == 2 and v.shape[1] == len(bounds) else None
        if name in self.var.columns and len(bounds) == 1:
            return self.var[name].to_numpy(dtype=np.float64)[:, None]
        return None

    def confint(self) -> float | None:
        value = self._confint
        return float(value) if isinstance(value, int | float | np.number) else None

    def can_derive(self, layer: str, have: set[str] | None = None) -> bool:
        """Whether ``layer`` can be computed from the other layers and the metadata."""
        have = set(self.file_layers) if have is None else have
        if layer == _ADJ:
            return self.fit_bounds() is not None and "P.Value" in have
        if layer not in DERIVED_LAYERS or "stdev.unscaled" not in have:
            return False
        if self._per_gene("s2_post") is None:
            return False
        if layer == STDEV_SCALED:
            return True
        return (
            "logFC" in have
            and self._per_gene("df_total") is not None
            and self.confint() is not None
        )

    # ------------------------------------------------------------------------ reading

    def _rows(self, rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            return np.arange(self.n_obs, dtype=np.int64)
        r = np.asarray(rows, dtype=np.int64)
        if len(r) and (r.min() < 0 or r.max() >= self.n_obs):
            raise IndexError(f"{self.path}: rows out of range 0..{self.n_obs - 1}")
        return r

    def _from_file(self, layer: str, rows: np.ndarray) -> np.ndarray:
        import h5py

        uniq, inverse = np.unique(rows, return_inverse=True)
        run = len(uniq) > 0 and int(uniq[-1]) - int(uniq[0]) + 1 == len(uniq)
        with h5py.File(self.path, "r") as f:
            ds = f["layers"][layer]
            if not isinstance(ds, h5py.Dataset):
                from anndata.io import sparse_dataset

                block = np.asarray(sparse_dataset(ds)[uniq].toarray())
            elif run:  # consecutive rows: one slice (no point selection)
                block = np.asarray(ds[int(uniq[0]) : int(uniq[-1]) + 1])
            else:
                block = np.asarray(ds[uniq])
        return block if len(uniq) == len(rows) and (inverse == np.arange(len(rows))).all() \
            else block[inverse]  # fmt: skip

    def array_rows(self, layer: str, rows: np.ndarray) -> np.ndarray:
        """Rows of a layer of the arrays as stored there (float32; ``-log10(p)`` for
        p-values), the file's genes only."""
        import zarr

        arr = self.arrays
        if arr is None or layer not in arr.layers:
            raise KeyError(f"{self.path}: layer {layer!r} is not in the arrays")
        uniq, inverse = np.unique(rows, return_inverse=True)
        z: Any = zarr.open_group(str(arr.path), mode="r", use_consolidated=None)[layer]
        layout = row_sharded_layout(z)
        zrows = arr.start + uniq
        if layout is not None:
            expected = arr.digests(layer) if arr.digests is not None else None
            block = read_rows(layout, zrows, expected=expected, missing="error", decode=False)
        elif len(zrows):
            block = np.asarray(z[int(zrows[0]) : int(zrows[-1]) + 1])[zrows - zrows[0]]
        else:
            block = np.zeros((0, int(z.shape[1])), dtype=np.float32)
        return np.ascontiguousarray(block[:, self._cols])[inverse]

    def _values(self, layer: str, rows: np.ndarray) -> np.ndarray:
        """A stored layer (file or arrays) as it is stored; p-values of the arrays
        decoded to float64."""
        if layer in self.file_layers:
            return self._from_file(layer, rows)
        if self.arrays is not None and layer in self.arrays.layers:
            raw = self.array_rows(layer, rows)
            return decode_p64(raw) if is_p_layer(layer) else raw
        raise KeyError(f"{self.path}: no layer {layer!r}; layers: {list(self.layers)}")

    def derive(
        self,
        layer: str,
        rows: np.ndarray,
        values: Callable[[str, np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """A derived layer (float64) from the stored ones (``values(layer, rows)``;
        default: as this reader reads them)."""
        get = values or self._values
        bounds = self.fit_bounds()
        if bounds is None:
            raise KeyError(f"{self.path}: no fits table (uns['ebayes_fits']) to derive {layer!r}")
        fit_of = np.full(self.n_obs, -1, dtype=np.int64)
        for k, (a, b) in enumerate(bounds):
            fit_of[a:b] = k
        if layer == _ADJ:
            out = np.full((len(rows), len(self.var)), np.nan)
            for k in np.unique(fit_of[rows]):
                if k < 0:
                    continue
                a, b = bounds[k]
                adj = self._fit_adj.get(int(k)) if values is None else None
                if adj is None:
                    adj = bh_per_fit(get("P.Value", np.arange(a, b)), [(0, b - a)])
                    if values is None:  # the reader's own: kept for the next rows
                        self._fit_adj = {int(k): adj}
                sel = fit_of[rows] == k
                out[sel] = adj[rows[sel] - a]
            return out
        s2 = self._per_gene("s2_post")
        if s2 is None:
            raise KeyError(f"{self.path}: no s2_post per gene to derive {layer!r}")
        f = fit_of[rows]
        with np.errstate(invalid="ignore"):
            sd = np.where(f[:, None] >= 0, np.sqrt(s2[:, np.maximum(f, 0)].T), np.nan)
        scaled = np.asarray(get("stdev.unscaled", rows), dtype=np.float64) * sd
        if layer == STDEV_SCALED:
            return scaled
        df = self._per_gene("df_total")
        conf = self.confint()
        if df is None or conf is None:
            raise KeyError(f"{self.path}: no df_total or confint to derive {layer!r}")
        q = t_quantile(df, confint=conf)  # genes × fits: few quantiles to compute
        lo, hi = confidence_limits(get("logFC", rows), scaled, q[:, np.maximum(f, 0)].T)
        return lo if layer == "CI.L" else hi

    def read(self, layer: str, rows: np.ndarray | None = None) -> np.ndarray:
        """One layer, rows ``rows`` of the file (default: all), the file's genes.

        float32, except a p-value layer holding values below float32's smallest
        normal number (float64, as the store's files keep them).
        """
        r = self._rows(rows)
        if layer in self.file_layers or (self.arrays is not None and layer in self.arrays.layers):
            x = self._values(layer, r)
        elif layer in self.layers:
            x = self.derive(layer, r)
        else:
            raise KeyError(f"{self.path}: no layer {layer!r}; layers: {list(self.layers)}")
        narrowed = storage_effects_dtype(layer, x)
        return np.asarray(x, dtype=narrowed)

    def stored_rows(self, layer: str, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of a layer as the arrays store them: float32, ``-log10(p)`` for
        p-values (copied as they are from the arrays that hold them)."""
        rows = np.arange(a, b, dtype=np.int64)
        if (
            layer not in self.file_layers
            and self.arrays is not None
            and layer in self.arrays.layers
        ):
            return self.array_rows(layer, rows)
        # a derived adj.P.Value.across_all_contrasts: BH once per fit (see derive)
        x = self._from_file(layer, rows) if layer in self.file_layers else self.derive(layer, rows)
        return encode_p(x) if is_p_layer(layer) else np.asarray(x, dtype=np.float32)

    def to_anndata(
        self, *, rows: np.ndarray | None = None, layers: Sequence[str] | None = None
    ) -> ad.AnnData:
        """The complete Effects (``layers``: all by default) of rows ``rows``."""
        import anndata as ad

        names = list(self.layers) if layers is None else list(layers)
        missing = [n for n in names if n not in self.layers]
        if missing:
            raise KeyError(f"{self.path}: no layers {missing}; layers: {list(self.layers)}")
        r = self._rows(rows)
        obs = self.obs.iloc[r].copy() if rows is not None else self.obs.copy()
        return ad.AnnData(
            obs=obs,
            var=self.var.copy(),
            uns=dict(self.uns),
            varm={k: v for k, v in self.varm.items()},
            layers={n: self.read(n, None if rows is None else r) for n in names},
        )


def storage_effects_dtype(layer: str, values: np.ndarray) -> type[np.floating]:
    """float32, or float64 for a p-value layer with values float32 cannot keep."""
    if not is_p_layer(layer):
        return np.float32
    v = np.asarray(values)
    if v.dtype == np.float32:
        return np.float32
    tiny = (v > 0) & (v < P_FLOAT32_MIN)
    return np.float64 if bool(tiny.any()) else np.float32


# ------------------------------------------------------------------------------ writing


def _as_stored(layer: str, x: np.ndarray, *, in_arrays: bool) -> np.ndarray:
    """What a reader of the store gets back for a layer (the arrays' encoding)."""
    if in_arrays and is_p_layer(layer):
        return decode_p64(encode_p(x))
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _verified(src: StoreEffects, layer: str, zarr_layers: Sequence[str]) -> bool:
    """Whether ``layer``, derived from the values as the store keeps them, is within
    the documented bound of ``src``'s own values (every value checked, fit by fit)."""
    bounds = src.fit_bounds() or []
    memo: dict[str, np.ndarray] = {}  # the current fit's layers, each read once

    def stored(name: str, rows: np.ndarray) -> np.ndarray:
        if name not in memo:
            memo[name] = _as_stored(name, src._values(name, rows), in_arrays=name in zarr_layers)
        return memo[name]

    for a, b in bounds:
        rows = np.arange(a, b)
        memo.clear()
        want = np.asarray(src._values(layer, rows), dtype=np.float64)
        got = src.derive(layer, rows, stored)
        if layer == _ADJ:
            with np.errstate(invalid="ignore"):  # p = 0: an infinite bound times 0
                tol = (p_bound(stored("P.Value", rows)) + 2 * _ULP32) * np.abs(want)
        elif layer == STDEV_SCALED:
            tol = CI_ULPS * _ULP32 * np.abs(want)
        else:
            lfc = stored("logFC", rows)
            tol = CI_ULPS * _ULP32 * np.maximum(np.abs(lfc), np.abs(want - lfc))
        same_nan = np.array_equal(np.isnan(want), np.isnan(got))
        with np.errstate(invalid="ignore"):  # p = 0: an infinite bound times 0
            if not same_nan or bool((np.abs(got - want) > tol).any()):
                return False
    covered = sum(b - a for a, b in bounds)
    return covered == src.n_obs


def store_file_layers(
    src: StoreEffects, zarr_layers: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """The layers of ``src`` a store file keeps, those the arrays hold, and those it
    derives (each checked on every value: a layer whose derivation is off is kept)."""
    in_arrays = [n for n in src.layers if n in zarr_layers]
    have = set(src.layers)
    derived = [
        n
        for n in DERIVED_LAYERS
        if n in have and n not in in_arrays and src.can_derive(n, have)
        and (n not in src.file_layers or _verified(src, n, zarr_layers))
    ]  # fmt: skip
    keep = [n for n in src.layers if n not in in_arrays and n not in derived]
    return keep, in_arrays, derived


def write_store_file(
    src: StoreEffects,
    dst: Path,
    *,
    keep: Sequence[str],
    in_arrays: Sequence[str],
    derived: Sequence[str],
    source_sha256: str,
) -> None:
    """Write the store's form of ``src`` to ``dst`` (atomically): its metadata, the
    layers ``keep`` and ``uns["store_layers"]`` naming the others.

    ``obs``, ``var``, ``varm`` and ``uns`` are copied from ``src``'s file as HDF5
    objects (compressed chunks as they are: decoding and re-encoding the data frames
    cost more than the rest of a store update); empty ``obsm``, ``obsp`` and ``varp``
    are written as AnnData writes them, and no ``X``.
    """
    import h5py
    from anndata.io import write_elem

    listed = {"arrays": list(in_arrays), "derived": list(derived), "source_sha256": source_sha256}
    with atomic_file(dst) as tmp, h5py.File(tmp, "w") as out, h5py.File(src.path, "r") as f:
        out.attrs.update(_ANNDATA_ATTRS)
        for name in ("obs", "var"):
            f.copy(f[name], out, name=name)
        uns = _dict_group(out, "uns")
        for key in f.get("uns", ()):
            if key != STORE_LAYERS:  # a store file's own list is replaced
                f.copy(f["uns"][key], uns, name=key)
        write_elem(uns, STORE_LAYERS, listed)
        if "varm" in f:
            f.copy(f["varm"], out, name="varm")
        else:
            _dict_group(out, "varm")
        for name in ("obsm", "obsp", "varp"):
            _dict_group(out, name)
        group = _dict_group(out, "layers")
        for name in keep:  # in the order of the complete file
            if name in src.file_layers:  # its compressed chunks copied as they are
                f.copy(f["layers"][name], group, name=name)
            else:  # from the arrays (they no longer hold it) or derived
                x = src.read(name)
                _write_dense(group, name, np.asarray(x, storage_effects_dtype(name, x)))


#: The root attributes of an ``.h5ad`` file, and those of one of its mappings.
_ANNDATA_ATTRS = {"encoding-type": "anndata", "encoding-version": "0.1.0"}
_DICT_ATTRS = {"encoding-type": "dict", "encoding-version": "0.1.0"}


def _dict_group(parent: Any, name: str) -> Any:
    group = parent.create_group(name)
    group.attrs.update(_DICT_ATTRS)
    return group


# ------------------------------------------------------------------------ a store's files


class StoreFiles:
    """Opens the Effects files of a store (as it is now) with their rows of the arrays.

    ``manifest``: the store's manifest (read when not given); the catalog tables
    ``contrasts`` and ``genes`` say where each file's rows and genes are.
    """

    def __init__(self, root: Path, manifest: Mapping[str, Any] | None = None) -> None:
        self.layout = StoreLayout(Path(root).absolute())
        self.manifest = dict(manifest) if manifest is not None else read_manifest(root)
        params = self.manifest.get("parameters", {})
        self.zarr_layers = tuple(str(v) for v in params.get("zarr_layers", []))
        self._starts: dict[str, tuple[str, int]] | None = None
        self._gene_col: pd.Series | None = None

    def _catalog(self) -> tuple[dict[str, tuple[str, int]], pd.Series]:
        if self._starts is None or self._gene_col is None:
            rows = pd.read_parquet(
                self.layout.catalog("contrasts"),
                columns=["mode", "effects_file", "file_row", "zarr_row"],
            )
            offset = rows["zarr_row"].to_numpy(np.int64) - rows["file_row"].to_numpy(np.int64)
            rows = rows.assign(offset=offset)
            firsts = rows.groupby("effects_file", sort=False).agg(
                mode=("mode", "first"), lo=("offset", "min"), hi=("offset", "max")
            )
            bad = firsts.index[firsts["lo"] != firsts["hi"]]
            if len(bad):
                raise StoreError(
                    f"{self.layout.root}: rows of {list(bad)[:3]} are not consecutive array "
                    "rows in catalog/contrasts.parquet"
                )
            self._starts = {
                str(rel): (str(m), int(lo))
                for rel, m, lo in zip(firsts.index, firsts["mode"], firsts["lo"], strict=True)
            }
            genes = pd.read_parquet(self.layout.catalog("genes"), columns=["gene_id", "zarr_col"])
            self._gene_col = pd.Series(
                genes["zarr_col"].to_numpy(np.int64), index=genes["gene_id"].astype(str)
            )
        return self._starts, self._gene_col

    def digests(self, mode: str, layer: str) -> dict[int, ShardDigest] | None:
        """Shard number → :class:`ShardDigest` of one array, from the manifest."""
        files = self.manifest.get("zarr", {}).get("files")
        if not files:
            return None
        prefix = f"{self.layout.rel(self.layout.zarr(mode))}/{layer}/c/"
        out = {}
        for rel, rec in files.items():
            if rel.startswith(prefix) and "index_crc32c" in rec:
                out[int(rel[len(prefix) :].split("/", 1)[0])] = ShardDigest(
                    int(rec["bytes"]), str(rec["sha256"]), str(rec["index_crc32c"])
                )
        return out

    def open(self, rel: str) -> StoreEffects:
        """The file ``rel`` (``effects/<dataset>/<mode>/<stem>_de.h5ad``), complete."""
        path = self.layout.root / rel
        if not path.is_file():
            raise StoreError(f"{self.layout.root}: no Effects file {rel}")
        starts, gene_col = self._catalog()
        where = starts.get(rel)
        arrays = None
        zpath = self.layout.zarr(where[0]) if where is not None else None
        if where is not None and zpath is not None and zpath.is_dir() and self.zarr_layers:
            mode, start = where
            arrays = ArrayRows(
                zpath,
                start,
                gene_col,
                self.zarr_layers,
                digests=functools.partial(self.digests, mode),
            )
        return StoreEffects(path, arrays=arrays)


def read_effects_file(
    root: str | os.PathLike[str],
    rel: str,
    *,
    rows: np.ndarray | None = None,
    layers: Sequence[str] | None = None,
) -> ad.AnnData:
    """The complete Effects of the store file ``rel`` (every layer, or ``layers``; rows
    ``rows`` of the file, default all): the file joined with its rows of the arrays
    and the derived layers computed back (see :class:`StoreEffects`).

    >>> eff = read_effects_file("compendium", "effects/ds/group/A375_de.h5ad")  # doctest: +SKIP
    """
    return StoreFiles(Path(root)).open(rel).to_anndata(rows=rows, layers=layers)
