"""The search index of a store: per-condition values and gene ranks, gene-major on disk.

A search reads, for every condition, the values of a few genes (a gene-set query) or of
all genes (a signature query), and the rank of each gene in the condition's signature.
Computing ranks at query time means sorting every condition's signature: too slow for a
store of half a million conditions. :class:`SearchIndex` computes them once and keeps
them with the store.

Layout (``<store>/search/``)::

    segments/<key>/values.npy    float32 (n_genes_seg, n_rows_seg), gene-major; NaN =
                                 not measured
    segments/<key>/ranks.npy     int16 (int32 above 32,767 genes) (n_genes_seg,
                                 n_rows_seg): 1-based rank of the gene in the row's
                                 signature sorted by value descending among the row's
                                 measured genes; 0 = not measured
    segments/<key>/stats.npz     n_measured (int32) and norms (float64, L2 over the
                                 measured values) per row
    segments/<key>/segment.json  the gene ids (columns) and row count of the segment
    <mode>-<layer>/index.json    the index of one build: the store's build_key, mode,
                                 layer, gene count and its segments
    <mode>-<layer>/rows.parquet  the indexed rows: contrast and condition ids, dataset,
                                 assay, cell context, compound, zarr_row, segment, position
    <mode>-<layer>/cols.npz      per segment, its columns on the store's gene axis

One **segment** holds the rows of one Effects file of the store (a dataset × context)
× the genes its dataset measures, gene-major, so a gene-set query reads only its genes'
stripes (``k × n_rows`` numbers, not ``n_genes × n_rows``) and no row is padded to the
union gene axis. Segments are keyed by the SHA-256 of their Effects file, the mode, the
layer and the index format: :meth:`SearchIndex.build` computes only the segments not on
disk yet (a store that gained a dataset re-indexes that dataset only; an interrupted
build resumes), then writes the ``<mode>-<layer>/`` folder of the build in one atomic
rename, then removes the segments no index uses. The row and gene numbers of a segment
on the store's axes are per build (``rows.parquet``, ``cols.npz``): a segment's content
does not depend on the other datasets. An index whose ``build_key`` is not the store's
is stale: :meth:`SearchIndex.open` refuses it and says how to rebuild it.

:meth:`SearchIndex.blocks` hands out :class:`~perturbridge.search.methods.Block` objects
(rows × requested gene columns, values, ranks, measured counts and norms) of at most
``block_rows`` rows, reading only the requested stripes of the memory-mapped arrays.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .._version import __version__
from ..compendium import Compendium, StoreError
from ..io import atomic_dir
from ..progress import track
from ..schema import ReplicateMode
from .methods import Block

__all__ = ["INDEX_FORMAT", "IndexWriter", "SearchIndex", "StaleIndexError", "rank_descending"]

logger = logging.getLogger(__name__)

#: Bumped when the layout or the ranks change: segments of another format are rebuilt.
INDEX_FORMAT = 1
_SEARCH_DIR = "search"
_SEGMENTS = "segments"
#: A segment's rows make blocks of their own (not copied into a shared block) from this many.
_OWN_BLOCK_ROWS = 1024
#: Rows read from the store per step while building (bounded by bytes too).
_BUILD_BYTES = 256 << 20
_ROW_COLUMNS = (
    "contrast_id",
    "condition_id",
    "dataset",
    "cell_context",
    "perturbagen",
    "compound_inchikey",
    "pubchem_cid",
    "pert_dose_uM",
    "pert_time_h",
    "zarr_row",
)


class StaleIndexError(StoreError):
    """The search index was built for another state of the store (or is missing)."""


def rank_descending(values: np.ndarray) -> np.ndarray:
    """Per row, the 1-based rank of each value sorted descending among the row's non-NaN
    values (ties in column order); 0 where NaN. ``int32``, the shape of ``values``.

    >>> rank_descending(np.array([[0.5, np.nan, 2.0, -1.0]])).tolist()
    [[2, 0, 1, 3]]
    """
    x = np.asarray(values)
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D (rows × genes), found shape {x.shape}")
    nan = np.isnan(x)
    order = np.argsort(np.where(nan, np.inf, -x), axis=1, kind="stable")
    ranks = np.empty(x.shape, dtype=np.int32)
    np.put_along_axis(
        ranks, order, np.broadcast_to(np.arange(1, x.shape[1] + 1, dtype=np.int32), x.shape), 1
    )
    ranks[nan] = 0
    return ranks


def _rank_dtype(n_genes: int) -> type[np.signedinteger[Any]]:
    return np.int16 if n_genes <= np.iinfo(np.int16).max else np.int32


# --------------------------------------------------------------------------- writing


class IndexWriter:
    """Writes the segments of a search index and, last, the index of one build.

    :meth:`SearchIndex.build` uses it on a store; a benchmark or a test may feed it
    generated arrays directly. Segments are written atomically (a folder renamed into
    place); :meth:`commit` writes the build's folder in one rename and removes the
    segments that no index of the folder uses.

    Parameters
    ----------
    root
        The index folder (``<store>/search``).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.segments = self.root / _SEGMENTS

    def has(self, key: str) -> bool:
        """Whether segment ``key`` is complete on disk."""
        return (self.segments / key / "segment.json").is_file()

    def write_segment(
        self, key: str, values: np.ndarray | Iterable[np.ndarray], *, genes: Sequence[str]
    ) -> None:
        """Write segment ``key`` from ``values`` (rows × ``genes``, NaN = not measured),
        given whole or as consecutive row chunks (so a large file is never in memory
        twice). Ranks, measured counts and norms are computed here."""
        chunks = [values] if isinstance(values, np.ndarray) else list(values)
        g = len(genes)
        bad = [c.shape for c in chunks if c.ndim != 2 or c.shape[1] != g]
        if bad:
            raise ValueError(f"segment {key}: chunks of shape {bad[:3]}, expected (rows, {g})")
        n = int(sum(c.shape[0] for c in chunks))
        self.segments.mkdir(parents=True, exist_ok=True)
        with atomic_dir(self.segments / key, replace=True) as tmp:
            vals = np.lib.format.open_memmap(tmp / "values.npy", "w+", np.float32, (g, n))
            ranks = np.lib.format.open_memmap(tmp / "ranks.npy", "w+", _rank_dtype(g), (g, n))
            n_measured = np.empty(n, dtype=np.int32)
            norms = np.empty(n, dtype=np.float64)
            start = 0
            for c in chunks:
                x = np.asarray(c, dtype=np.float32)
                stop = start + x.shape[0]
                vals[:, start:stop] = x.T
                ranks[:, start:stop] = rank_descending(x).T
                measured = ~np.isnan(x)
                n_measured[start:stop] = measured.sum(axis=1)
                norms[start:stop] = np.sqrt(np.nansum(x.astype(np.float64) ** 2, axis=1))
                start = stop
            vals.flush()
            ranks.flush()
            del vals, ranks
            np.savez(tmp / "stats.npz", n_measured=n_measured, norms=norms)
            meta = {"format": INDEX_FORMAT, "n_rows": n, "genes": [str(x) for x in genes]}
            (tmp / "segment.json").write_text(json.dumps(meta), encoding="utf-8")

    def commit(
        self,
        *,
        build_key: str,
        mode: str,
        layer: str,
        n_genes: int,
        rows: pd.DataFrame,
        cols: dict[str, np.ndarray],
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the index of one build: ``rows`` (one row per indexed condition with at
        least ``zarr_row``, ``segment`` and ``position`` in the segment) and ``cols``
        (segment key → its columns on the store gene axis). Returns its folder."""
        need = {"zarr_row", "segment", "position"}
        if not need <= set(rows.columns):
            raise ValueError(f"rows lack columns {sorted(need - set(rows.columns))}")
        keys = sorted(set(rows["segment"].astype(str)))
        missing = [k for k in keys if not self.has(k) or k not in cols]
        if missing:
            raise ValueError(f"segments {missing[:3]} are not written or have no columns")
        folder = self.root / f"{mode}-{layer}"
        manifest = {
            "format": INDEX_FORMAT,
            "version": __version__,
            "build_key": build_key,
            "mode": mode,
            "layer": layer,
            "n_genes": int(n_genes),
            "n_rows": len(rows),
            "segments": keys,
            **(extra or {}),
        }
        with atomic_dir(folder, replace=True) as tmp:
            rows.reset_index(drop=True).to_parquet(tmp / "rows.parquet", index=False)
            arrays: dict[str, Any] = {k: np.asarray(cols[k], dtype=np.int64) for k in keys}
            np.savez(tmp / "cols.npz", **arrays)
            (tmp / "index.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        self._collect()
        return folder

    def _collect(self) -> None:
        """Remove the segments that no index of the folder uses."""
        used: set[str] = set()
        for manifest in self.root.glob("*/index.json"):
            used |= set(json.loads(manifest.read_text(encoding="utf-8"))["segments"])
        if not self.segments.is_dir():
            return
        for seg in self.segments.iterdir():
            if seg.is_dir() and seg.name not in used and not seg.name.startswith("."):
                shutil.rmtree(seg, ignore_errors=True)


# --------------------------------------------------------------------------- reading


@dataclass
class _Segment:
    key: str
    cols: np.ndarray  # store gene columns, sorted
    rows: np.ndarray  # zarr rows of the segment's positions (-1: not indexed)
    values: np.ndarray  # memmap (g, n)
    ranks: np.ndarray  # memmap (g, n)
    n_measured: np.ndarray
    norms: np.ndarray


def _store_of(store: Compendium | str | os.PathLike[str]) -> tuple[Compendium, bool]:
    if isinstance(store, Compendium):
        return store, False
    return Compendium.open(store), True


class SearchIndex:
    """The per-condition values and ranks of a store, for search (see the module docs).

    Use :meth:`build` to write (or bring up to date) and :meth:`open` to read.

    Attributes
    ----------
    conditions
        The indexed rows: ``contrast_id``, ``condition_id``, ``dataset``, ``assay``,
        ``cell_context``, ``perturbagen``, ``compound_inchikey``, ``pubchem_cid``,
        ``pert_dose_uM``, ``pert_time_h``, ``zarr_row`` (sorted by ``zarr_row``).
    n_genes
        Columns of the store's gene axis.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.n_genes = int(manifest["n_genes"])
        self.mode = str(manifest["mode"])
        self.layer = str(manifest["layer"])
        self.build_key = str(manifest["build_key"])
        # the row table as Arrow (fast); it becomes a DataFrame, :attr:`conditions`, on
        # first use only (its strings take most of the time of an open)
        table = pq.read_table(folder / "rows.parquet")
        self._table = table
        order = np.argsort(table["zarr_row"].to_numpy(), kind="stable")
        zarr_row = table["zarr_row"].to_numpy().astype(np.int64)[order]
        position = table["position"].to_numpy().astype(np.int64)[order]
        segment = table["segment"].combine_chunks().dictionary_encode()
        codes = segment.indices.to_numpy(zero_copy_only=False).astype(np.int64)[order]
        names = [str(x) for x in segment.dictionary.to_pylist()]
        self._zarr_row, self._position = zarr_row, position
        self._segment_code, self._segment_names = codes, names
        by_segment = {names[c]: at for c, at in _by_code(codes).items()}
        cols = np.load(folder / "cols.npz")
        seg_root = folder.parent / _SEGMENTS
        self._segments: list[_Segment] = []
        for key in manifest["segments"]:
            d = seg_root / key
            if not (d / "segment.json").is_file():
                raise StaleIndexError(
                    f"{folder}: segment {key} is missing (the index folder was changed "
                    "outside perturbridge); rebuild the index (SearchIndex.build)"
                )
            values = np.load(d / "values.npy", mmap_mode="r")
            at = by_segment.get(key, np.zeros(0, dtype=np.int64))
            zrows = np.full(values.shape[1], -1, dtype=np.int64)
            zrows[position[at]] = zarr_row[at]
            stats = np.load(d / "stats.npz")
            self._segments.append(
                _Segment(
                    key=key,
                    cols=np.asarray(cols[key], dtype=np.int64),
                    rows=zrows,
                    values=values,
                    ranks=np.load(d / "ranks.npy", mmap_mode="r"),
                    n_measured=stats["n_measured"],
                    norms=stats["norms"],
                )
            )
        self._segments.sort(key=lambda s: int(s.rows[s.rows >= 0].min()) if len(s.rows) else 0)

    @property
    def n_conditions(self) -> int:
        """The number of indexed rows (without making :attr:`conditions`)."""
        return len(self._zarr_row)

    @functools.cached_property
    def conditions(self) -> pd.DataFrame:
        """The indexed rows (see the class docs), sorted by ``zarr_row``; made on first
        use from the row table read at open."""
        rows = self._table.to_pandas()
        rows = rows.sort_values("zarr_row", kind="stable").reset_index(drop=True)
        return rows.drop(columns=["segment", "position"])

    def __repr__(self) -> str:
        return (
            f"SearchIndex({str(self.folder)!r}: {self.n_conditions:,} conditions × "
            f"{self.n_genes:,} genes, {len(self._segments)} segments, layer {self.layer!r})"
        )

    # ----------------------------------------------------------- open / build

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, build_key: str | None = None) -> SearchIndex:
        """Read the index in ``folder`` (``<store>/search/<mode>-<layer>``); with
        ``build_key``, refuse it (:class:`StaleIndexError`) unless it was built for that
        state of the store. :meth:`open` is the usual way in."""
        folder = Path(folder)
        path = folder / "index.json"
        if not path.is_file():
            raise StaleIndexError(f"no search index in {folder}; build it with {_how(folder)}")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != INDEX_FORMAT:
            raise StaleIndexError(
                f"{folder}: search index format {manifest.get('format')}, this version reads "
                f"{INDEX_FORMAT}; rebuild it with {_how(folder)}"
            )
        if build_key is not None and manifest.get("build_key") != build_key:
            raise StaleIndexError(
                f"the search index {folder} is stale: it was built for store build "
                f"{str(manifest.get('build_key'))[:12]}…, the store is now at build "
                f"{build_key[:12]}…; rebuild it with {_how(folder)} (only the datasets "
                "that changed are re-indexed)"
            )
        return cls(folder, manifest)

    @classmethod
    def open(
        cls,
        store: Compendium | str | os.PathLike[str],
        *,
        mode: str = "group",
        layer: str = "logFC",
    ) -> SearchIndex:
        """The current search index of ``store`` for ``mode`` and ``layer``.

        Raises :class:`StaleIndexError` (a ``ValueError``) when there is none or when it
        was built for another state of the store (the message says to rebuild it).
        """
        comp, close = _store_of(store)
        try:
            folder = comp.path / _SEARCH_DIR / f"{mode}-{layer}"
            return cls.load(folder, build_key=str(comp.manifest.get("build_key", "")))
        finally:
            if close:
                comp.close()

    @classmethod
    def build(
        cls,
        store: Compendium | str | os.PathLike[str],
        *,
        mode: ReplicateMode = "group",
        layer: str = "logFC",
        progress: bool = True,
    ) -> SearchIndex:
        """Write (or bring up to date) the search index of ``store`` and open it.

        Segments already on disk for the same Effects file, mode and layer are reused
        (not recomputed); an index already current is opened as it is.
        """
        comp, close = _store_of(store)
        try:
            return cls._build(comp, mode=mode, layer=layer, progress=progress)
        finally:
            if close:
                comp.close()

    @classmethod
    def _build(
        cls, comp: Compendium, *, mode: ReplicateMode, layer: str, progress: bool
    ) -> SearchIndex:
        if mode not in ("group", "separate"):
            raise ValueError(f"mode must be 'group' or 'separate', found {mode!r}")
        build_key = str(comp.manifest.get("build_key", ""))
        root = comp.path / _SEARCH_DIR
        try:
            return cls.load(root / f"{mode}-{layer}", build_key=build_key)
        except StaleIndexError:
            pass
        # fail on a bad layer before any work
        probe = comp.contrasts(mode=mode)
        if probe.empty:
            raise StoreError(f"{comp.path} has no {mode}-mode contrasts to index")
        comp.effects(probe["contrast_id"].iloc[:1].tolist(), layer=layer, mode=mode)
        genes = comp.genes()
        gene_col = pd.Series(genes["zarr_col"].to_numpy(np.int64), index=genes["gene_id"])
        datasets = comp.table("datasets").set_index("dataset")
        files: dict[str, Any] = comp.manifest.get("files", {})
        writer = IndexWriter(root)
        rows_out = []
        cols_out: dict[str, np.ndarray] = {}
        groups = list(probe.groupby("effects_file", sort=True))
        computed = 0
        for rel, part in track(groups, description="index", enabled=progress):
            part = part.sort_values("file_row")
            dataset = str(part["dataset"].iloc[0])
            sha = str(files.get(str(rel), {}).get("sha256", ""))
            if not sha:
                raise StoreError(f"{comp.path}: {rel} is not in the store manifest")
            measured = genes[[dataset in list(d) for d in genes["datasets"]]]
            ids = measured["gene_id"].astype(str).tolist()
            key = _segment_key(sha=sha, mode=mode, layer=layer, genes=ids)
            if not writer.has(key):
                writer.write_segment(
                    key, _read_rows(comp, part, measured, layer=layer, mode=mode), genes=ids
                )
                computed += 1
            cols_out[key] = _segment_cols(writer, key, gene_col)
            sub = part.loc[:, [c for c in _ROW_COLUMNS if c in part.columns]].copy()
            sub["assay"] = str(datasets.loc[dataset, "assay"]) if dataset in datasets.index else ""
            sub["segment"] = key
            sub["position"] = part["file_row"].to_numpy(dtype=np.int64)
            rows_out.append(sub)
        rows = pd.concat(rows_out, ignore_index=True)
        logger.info(
            "search index: %d segments computed, %d reused", computed, len(groups) - computed
        )
        folder = writer.commit(
            build_key=build_key, mode=mode, layer=layer, n_genes=len(genes), rows=rows,
            cols=cols_out, extra={"store": str(comp.path)},
        )  # fmt: skip
        return cls.load(folder, build_key=build_key)

    # ----------------------------------------------------------- blocks

    def blocks(
        self,
        *,
        cols: np.ndarray | None,
        rows: np.ndarray | None = None,
        ranks: bool,
        block_rows: int = 65536,
        measured_only: bool = False,
    ) -> Iterator[Block]:
        """Blocks of the indexed rows × gene columns ``cols``.

        Parameters
        ----------
        cols
            Sorted store gene columns (``zarr_col``); ``None``: every column.
        rows
            Store rows (``zarr_row``) to read; ``None``: every indexed row. A row that
            is not indexed is a ``KeyError``.
        ranks
            Also hand out the ranks (for the rank-based scores).
        block_rows
            At most this many rows per block (memory is ``block_rows × len(cols)``).
        measured_only
            Each block's ``cols`` are the requested columns its rows' dataset measures
            (no NaN padding to the union gene axis): the fast way for a score that
            treats a missing column as not measured. ``False``: ``cols`` as requested.

        Yields
        ------
        :class:`~perturbridge.search.methods.Block`, one segment (dataset × context)
        at a time, rows in the order of the segment.
        """
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, found {block_rows}")
        want = None if cols is None else np.asarray(cols, dtype=np.int64)
        if want is not None and len(want) > 1 and np.any(np.diff(want) <= 0):
            raise ValueError("cols must be sorted ascending without repeats")
        if want is not None and len(want) and (want[0] < 0 or want[-1] >= self.n_genes):
            raise KeyError(f"cols must lie in 0..{self.n_genes - 1} (the store's gene columns)")
        selected = None if rows is None else self._select(np.asarray(rows, dtype=np.int64))
        # segments measuring the same genes share blocks (a store's many small contexts
        # of one dataset make full blocks, not one small block each)
        groups: dict[bytes, list[_Piece]] = {}
        for seg in self._segments:
            local = np.flatnonzero(seg.rows >= 0) if selected is None else selected.get(seg.key)
            if local is None or not len(local):
                continue
            if want is None:
                out_cols = seg.cols if measured_only else np.arange(self.n_genes, dtype=np.int64)
                gpos = np.arange(len(seg.cols))
                opos = gpos if measured_only else seg.cols
            else:
                gpos_all = np.searchsorted(seg.cols, want)
                gpos_all = np.minimum(gpos_all, max(len(seg.cols) - 1, 0))
                hit = (seg.cols[gpos_all] == want) if len(seg.cols) else np.zeros(len(want), bool)
                gpos = gpos_all[hit]
                if measured_only:
                    out_cols, opos = want[hit], np.arange(int(hit.sum()))
                else:
                    out_cols, opos = want, np.flatnonzero(hit)
            group = groups.setdefault(seg.cols.tobytes() + b"|" + out_cols.tobytes(), [])
            group.append(_Piece(seg, local, gpos, opos, out_cols))
        for pieces in groups.values():
            batch: list[_Piece] = []
            size = 0
            for piece in pieces:
                local = piece.local
                if len(local) >= _OWN_BLOCK_ROWS:
                    # a large piece makes blocks of its own: no copy into a shared block
                    # (its values are then views of the index's pages where it can be)
                    for start in range(0, len(local), block_rows):
                        part = local[start : start + block_rows]
                        own = _Piece(piece.seg, part, piece.gpos, piece.opos, piece.out_cols)
                        yield self._block([own], ranks=ranks)
                    continue
                while len(local):
                    take = local[: block_rows - size]
                    batch.append(_Piece(piece.seg, take, piece.gpos, piece.opos, piece.out_cols))
                    size += len(take)
                    local = local[len(take) :]
                    if size == block_rows:
                        yield self._block(batch, ranks=ranks)
                        batch, size = [], 0
            if batch:
                yield self._block(batch, ranks=ranks)

    def _select(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        zr = self._zarr_row
        pos = np.searchsorted(zr, rows)
        pos = np.minimum(pos, len(zr) - 1)
        bad = rows[zr[pos] != rows] if len(zr) else rows
        if len(bad):
            raise KeyError(
                f"{len(bad)} rows are not in the search index (first: {bad[:5].tolist()}); "
                f"it holds the {self.mode}-mode rows of the store"
            )
        picked = np.unique(pos)
        codes = self._segment_code[picked]
        positions = self._position[picked]
        return {self._segment_names[c]: np.sort(positions[at]) for c, at in _by_code(codes).items()}

    def _block(self, pieces: list[_Piece], *, ranks: bool) -> Block:
        """One block from pieces of segments that share their columns, gene-major (a
        gene's values over the rows side by side, as on disk); a single piece of
        consecutive rows × all its segment's genes is a view of the index's pages."""
        out_cols = pieces[0].out_cols
        values = _gather([p.seg.values for p in pieces], pieces, np.float32, np.nan)
        rk = None
        if ranks:
            dtype = np.result_type(*[p.seg.ranks.dtype for p in pieces])
            rk = _gather([p.seg.ranks for p in pieces], pieces, dtype, 0).T
        return Block(
            rows=np.concatenate([p.seg.rows[p.local] for p in pieces]),
            cols=out_cols,
            values=values.T,
            ranks=rk,
            n_measured=np.concatenate([p.seg.n_measured[p.local] for p in pieces]),
            norms=np.concatenate([p.seg.norms[p.local] for p in pieces]),
            complete=all(len(p.gpos) == len(p.seg.cols) for p in pieces),
        )


@dataclass(frozen=True)
class _Piece:
    """Rows ``local`` of a segment, its gene positions ``gpos`` going to the block's
    column positions ``opos`` of ``out_cols``."""

    seg: _Segment
    local: np.ndarray
    gpos: np.ndarray
    opos: np.ndarray
    out_cols: np.ndarray


def _by_code(codes: np.ndarray) -> dict[int, np.ndarray]:
    """Positions of each value of ``codes``, ascending (a group-by on integer codes)."""
    order = np.argsort(codes, kind="stable")
    values, starts = np.unique(codes[order], return_index=True)
    stops = [*starts[1:].tolist(), len(codes)]
    return {
        int(v): order[a:b] for v, a, b in zip(values.tolist(), starts.tolist(), stops, strict=True)
    }


def _stripes(arr: np.ndarray, p: _Piece) -> np.ndarray:
    """Genes ``p.gpos`` × rows ``p.local`` of a gene-major array: a view where the rows
    are consecutive and every gene is wanted, else a copy."""
    local = p.local
    if int(local[-1]) - int(local[0]) + 1 == len(local):  # contiguous rows: one slice
        rows = slice(int(local[0]), int(local[-1]) + 1)
        part = arr[:, rows] if len(p.gpos) == arr.shape[0] else arr[p.gpos, rows]
    elif len(p.gpos) == arr.shape[0]:  # every gene: a take per gene row (faster than ix_)
        part = np.take(arr, local, axis=1)
    else:
        part = arr[np.ix_(p.gpos, local)]
    return np.asarray(part)


def _gather(arrays: list[np.ndarray], pieces: list[_Piece], dtype: Any, fill: float) -> np.ndarray:
    """The pieces' stripes side by side, ``(len(out_cols), rows)``; ``fill`` in the
    columns a piece's segment does not measure."""
    k = len(pieces[0].out_cols)
    if len(pieces) == 1 and len(pieces[0].opos) == k:
        part = _stripes(arrays[0], pieces[0])
        return part if part.dtype == dtype else part.astype(dtype)
    n = sum(len(p.local) for p in pieces)
    whole = all(len(p.opos) == k for p in pieces)  # no column to pad
    out = np.empty((k, n), dtype=dtype)
    if not whole:
        out.fill(fill)
    start = 0
    for arr, p in zip(arrays, pieces, strict=True):
        stop = start + len(p.local)
        if whole:
            out[:, start:stop] = _stripes(arr, p)
        else:
            out[p.opos, start:stop] = _stripes(arr, p)
        start = stop
    return out


# --------------------------------------------------------------------------- helpers


def _how(folder: Path) -> str:
    """How to (re)build the index of ``folder`` (``<store>/search/<mode>-<layer>``)."""
    mode, _, layer = folder.name.partition("-")
    opts = "".join(
        f" --{k} {v}" for k, v, default in (("mode", mode, "group"), ("layer", layer, "logFC"))
        if v != default
    )  # fmt: skip
    return f"`perturbridge search-index {folder.parent.parent}{opts}` (SearchIndex.build)"


def _segment_key(*, sha: str, mode: str, layer: str, genes: Sequence[str]) -> str:
    """A segment's content key: its Effects file, mode, layer, genes and the format."""
    text = json.dumps(
        {"format": INDEX_FORMAT, "sha256": sha, "mode": mode, "layer": layer,
         "genes": hashlib.sha256("\n".join(genes).encode()).hexdigest()}
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _segment_cols(writer: IndexWriter, key: str, gene_col: pd.Series) -> np.ndarray:
    meta = json.loads((writer.segments / key / "segment.json").read_text(encoding="utf-8"))
    genes = pd.Index(meta["genes"])
    missing = genes[~genes.isin(gene_col.index)]
    if len(missing):
        raise StoreError(f"segment {key}: genes {list(missing[:3])} are not on the store's axis")
    cols = gene_col.reindex(genes).to_numpy(dtype=np.int64)
    if len(cols) > 1 and np.any(np.diff(cols) <= 0):
        raise StoreError(f"segment {key}: its genes are not in the order of the store's axis")
    return cols


def _read_rows(
    comp: Compendium,
    part: pd.DataFrame,
    measured: pd.DataFrame,
    *,
    layer: str,
    mode: ReplicateMode,
) -> Iterator[np.ndarray]:
    """The rows of one Effects file × its dataset's genes, in chunks of bounded bytes."""
    step = max(1, _BUILD_BYTES // (4 * max(1, comp.genes().shape[0])))
    contrasts = part["contrast_id"].astype(str).tolist()
    cols = measured["zarr_col"].to_numpy(dtype=np.int64)
    for start in range(0, len(contrasts), step):
        eff = comp.effects(contrasts[start : start + step], layer=layer, mode=mode)
        x = np.asarray(eff.X, dtype=np.float32)
        yield np.ascontiguousarray(x[:, cols])
