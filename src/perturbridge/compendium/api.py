"""Query a compendium store: SQL over the catalog, conditions, and effect slices.

>>> from perturbridge.compendium import Compendium
>>> with Compendium.open("compendium") as comp:  # doctest: +SKIP
...     comp.sql("SELECT dataset, count(*) AS n FROM conditions GROUP BY dataset")
...     cond = comp.conditions(compound="vorinostat", time=24)
...     eff = comp.effects(cond, genes=["TP53", "MYC"], layer="logFC")

The catalog tables (``datasets``, ``samples``, ``conditions``, ``contrasts``, ``genes``,
``compounds``, ``contexts``, ``ledger``) are DuckDB views over the Parquet files, so
filters are pushed down to storage. :meth:`Compendium.effects` reads only the requested
rows and genes from the consolidated Zarr array (or, for a layer that is not
consolidated, from the Effects files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..ids.compounds import CompoundResolver
from ..ids.reader import RefStoreReader
from ..io._resource import Resource
from ..schema import BIOLOGY_COLUMNS, BIOLOGY_VOCABULARIES, EFFECT_LAYERS, UNKNOWN
from ._common import StoreError
from ._footprint import STDEV_SCALED
from ._shards import ShardDigest, read_rows, row_sharded_layout
from ._sql import DUCKDB_VECTOR, interruptible, locked_connection, read_only_statement, with_limit
from .store import (
    CATALOG_TABLES,
    StoreFiles,
    StoreLayout,
    changed_files,
    check_store,
    read_manifest,
)
from .store._catalog import CATALOG_BIOLOGY
from .store._verify import check_file

if TYPE_CHECKING:
    import anndata as ad
    import duckdb

__all__ = ["Compendium"]

Number = int | float
_NUM_TOL = 1e-6


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


class Compendium(Resource):
    """An open compendium store. Use :meth:`open`, preferably as a context manager."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._layout = StoreLayout(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._zarr: dict[str, Any] = {}
        self._genes: pd.DataFrame | None = None
        #: threads reading shard files in :meth:`effects` (I/O and decompression)
        self.read_threads = 4
        #: identities of the files checked at open (see :meth:`_check_unchanged`)
        self._identities: dict[str, Any] = {}
        #: Effects files whose SHA-256 was checked (once per open)
        self._checked_files: set[str] = set()
        self._digests: dict[str, Any] = {}
        self._files: StoreFiles | None = None
        #: catalog table → the FROM clause that gives it with the biology columns
        self._views: dict[str, str] = {}

    # ----------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Compendium:
        """Open the store at ``path``.

        Raises :class:`StoreError` if it is not a store, or if its catalog tables or
        Zarr metadata do not match its manifest (size and SHA-256: a damaged store, or
        one caught in an interrupted update); the message names the file and what to
        run. Shards and Effects files are checked when they are read.
        """
        root = Path(path).absolute()
        manifest = read_manifest(root)
        identities = check_store(root, manifest)
        comp = cls(root, manifest)
        comp._identities = identities
        return comp

    def _check_unchanged(self) -> None:
        """Raise :class:`StoreError` if the files checked at open were replaced since
        (an update was committed while the store was open): what was just read may mix
        the two states."""
        changed = changed_files(self.path, self._identities)
        if changed:
            raise StoreError(
                f"{self.path} was updated while it was open ({changed[0]} changed): "
                "what was read may mix two states of the store; open it again"
            )

    def close(self) -> None:
        """Close the DuckDB connection."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._zarr.clear()

    def __repr__(self) -> str:
        c = self.manifest.get("counts", {})
        return (
            f"Compendium({str(self.path)!r}: {c.get('datasets', 0)} datasets, "
            f"{c.get('conditions', 0):,} conditions, {c.get('genes', 0):,} genes)"
        )

    # ----------------------------------------------------------- SQL

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, with one view per catalog table.

        The connection reads the catalog Parquet files and nothing else: external access
        (files, network, extensions) is off, with the catalog files as the only allowed
        paths, and the configuration is locked so no ``SET`` turns it back on.
        """
        if self._con is None:
            self._con = locked_connection(
                {table: self._layout.catalog(table) for table in CATALOG_TABLES}
            )
        return self._con

    @property
    def tables(self) -> list[str]:
        """Names of the catalog tables (views in :meth:`sql`)."""
        return list(CATALOG_TABLES)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a read-only DuckDB SQL query over the catalog views; returns a DataFrame.

        One statement: ``SELECT``/``WITH``/``FROM``/``VALUES``, ``DESCRIBE``, ``SHOW``,
        ``SUMMARIZE``, ``EXPLAIN`` or ``PRAGMA table_info(…)``/``show_tables``. Anything
        else (``COPY``, ``ATTACH``, ``INSTALL``, ``LOAD``, ``EXPORT``, ``CREATE``,
        ``INSERT``, ``SET`` …) raises :class:`StoreError` before it runs, and the query
        cannot read files other than the catalog or reach the network. Ctrl-C stops a
        running query (``KeyboardInterrupt``). For a large result use
        :meth:`sql_batches`.

        Examples
        --------
        >>> comp.sql("SELECT * FROM datasets")  # doctest: +SKIP
        >>> comp.sql("SELECT count(*) FROM conditions WHERE pert_time_h = ?", [24])
        ... # doctest: +SKIP
        """
        read_only_statement(query)
        con = self.con
        return interruptible(con, lambda: con.execute(query, params or []).df())

    def sql_batches(
        self,
        query: str,
        params: Sequence[Any] | None = None,
        *,
        limit: int | None = None,
        chunk_size: int = 65_536,
    ) -> Iterator[pd.DataFrame]:
        """Run a read-only query like :meth:`sql` and yield its result in frames of about
        ``chunk_size`` rows (whole DuckDB vectors of 2,048 rows), so memory is bounded by
        ``chunk_size``, not by the size of the result.

        ``limit`` keeps the first ``limit`` rows and is pushed into the query (``SELECT *
        FROM (query) LIMIT n``), so a sort or a join computes only those rows. The first
        frame comes even when the result is empty (it carries the columns). Another query
        on this compendium while the frames are read ends the stream.

        Examples
        --------
        >>> for frame in comp.sql_batches("SELECT * FROM contrasts", chunk_size=10_000):
        ...     frame.to_csv("contrasts.tsv", sep="\t", mode="a")  # doctest: +SKIP
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, found {limit}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
        text = with_limit(read_only_statement(query), limit) or query
        con = self.con
        interruptible(con, lambda: con.execute(text, params or []))
        vectors = -(-chunk_size // DUCKDB_VECTOR)
        remaining = limit
        first = True
        while True:
            frame = interruptible(con, lambda: con.fetch_df_chunk(vectors))
            if remaining is not None:
                frame = frame.iloc[:remaining]
                remaining -= len(frame)
            if len(frame) or first:
                yield frame
            first = False
            if len(frame) == 0 or remaining == 0:
                return

    def table(self, name: str) -> pd.DataFrame:
        """A whole catalog table."""
        if name not in CATALOG_TABLES:
            raise KeyError(f"no catalog table {name!r}; tables: {list(CATALOG_TABLES)}")
        return pd.read_parquet(self._layout.catalog(name))

    # ----------------------------------------------------------- conditions

    @property
    def modes(self) -> list[str]:
        """Replicate modes with consolidated arrays (``group``, ``separate``)."""
        return [Path(p).stem for p in self.manifest.get("zarr", {}).get("paths", [])]

    @property
    def layers(self) -> list[str]:
        """Layers of the consolidated arrays (others are read from the Effects files)."""
        return list(self.manifest.get("parameters", {}).get("zarr_layers", []))

    def conditions(
        self,
        *,
        compound: str | Sequence[str] | None = None,
        context: str | Sequence[str] | None = None,
        dataset: str | Sequence[str] | None = None,
        dose: Number | Sequence[Number] | tuple[Number, Number] | None = None,
        time: Number | Sequence[Number] | tuple[Number, Number] | None = None,
        refs: str | os.PathLike[str] | CompoundResolver | None = None,
        **biology: str | Sequence[str],
    ) -> pd.DataFrame:
        """Conditions (dataset × context × compound × dose × time) matching all filters.

        Parameters
        ----------
        compound
            Compound id, InChIKey (or parent InChIKey), upstream id or name
            (case-insensitive); or a list of them. With ``refs``, each is also resolved
            through the reference store, and the conditions of the parent InChIKey it
            resolves to match as well (``PLX4032`` finds vemurafenib's conditions).
        context
            Cell context id or name, or a list.
        dataset
            Dataset name, or a list.
        dose, time
            In µM and hours: a number or a list of numbers (matched to a relative
            tolerance of 1e-6), or a ``(low, high)`` tuple (inclusive range).
        refs
            A reference store folder (its compound resolver is loaded once per store
            and kept) or a :class:`~perturbridge.ids.compounds.CompoundResolver`.
            Ambiguous or unresolved names match by name only.
        **biology
            Biology columns (:data:`~perturbridge.schema.BIOLOGY_COLUMNS`): a value or
            a list, case-insensitive; ``disease`` and ``tissue`` match the label or the
            ontology id (``disease="MONDO:0005105"``, ``tissue="skin of body"``);
            ``sex``, ``tissue_type`` and ``suspension_type`` must be values of their
            vocabularies (``sex="female"``, ``tissue_type="primary cell"``).

        Returns
        -------
        pandas.DataFrame
            Rows of ``catalog/conditions.parquet``, ordered by dataset, cell context,
            compound, dose (numerically), time and id. A store built before the biology
            columns gives them as ``unknown``.

        Examples
        --------
        >>> comp.conditions(disease="melanoma", sex="female", time=24)  # doctest: +SKIP
        """
        where: list[str] = []
        params: list[Any] = []
        if compound is not None:
            values = [str(v) for v in _as_list(compound)]
            if refs is not None:
                values += _compound_aliases(values, refs)
            lowered = [v.lower() for v in values]
            where.append(
                "(list_has_any([compound_id, compound_inchikey, compound_parent_inchikey, "
                "compound_id_source], ?::VARCHAR[]) OR lower(perturbagen) IN "
                "(SELECT unnest(?::VARCHAR[])))"
            )
            params += [values, lowered]
        if context is not None:
            values = [str(v) for v in _as_list(context)]
            where.append("(cell_context IN (SELECT unnest(?::VARCHAR[])) OR "
                         "cell_name IN (SELECT unnest(?::VARCHAR[])))")  # fmt: skip
            params += [values, values]
        if dataset is not None:
            where.append("dataset IN (SELECT unnest(?::VARCHAR[]))")
            params.append([str(v) for v in _as_list(dataset)])
        for column, value in (("pert_dose_uM", dose), ("pert_time_h", time)):
            if value is None:
                continue
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise ValueError(
                        f"a range for {column} is a (low, high) tuple, found {value!r}; "
                        "give several values as a list"
                    )
                where.append(f"{column} BETWEEN ? AND ?")
                params += [float(value[0]), float(value[1])]
            else:
                nums = [float(v) for v in _as_list(value)]
                where.append("(" + " OR ".join(f"abs({column} - ?) <= ?" for _ in nums) + ")")
                for v in nums:
                    params += [v, _NUM_TOL * max(abs(v), 1e-12)]
        for column, wanted in biology.items():
            clause, values = _biology_filter(column, wanted)
            where.append(clause)
            params += values
        query = f"SELECT * FROM {self._view_with_biology('conditions')}"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += (
            " ORDER BY dataset, cell_context, compound_id, pert_dose_uM, pert_time_h, condition_id"
        )
        return self.sql(query, params)

    def _view_with_biology(self, table: str) -> str:
        """``table``, or a subquery adding the biology columns as ``unknown`` where the
        store was built before them."""
        if table not in self._views:
            have = set(self.sql(f"DESCRIBE {table}")["column_name"])
            missing = [c for c in CATALOG_BIOLOGY if c not in have]
            extra = ", ".join(f"'{UNKNOWN}' AS {c}" for c in missing)
            self._views[table] = f"(SELECT *, {extra} FROM {table}) AS {table}" if extra else table
        return self._views[table]

    def contrasts(
        self,
        conditions: pd.DataFrame | Sequence[str] | None = None,
        *,
        mode: Literal["group", "separate"] = "group",
    ) -> pd.DataFrame:
        """The contrasts of ``mode`` for ``conditions`` (all when ``None``), in the order
        of the conditions (several per condition in ``separate`` mode)."""
        if mode not in ("group", "separate"):
            raise ValueError(f"mode must be 'group' or 'separate', found {mode!r}")
        if conditions is None:
            return _biology_columns(
                self.sql("SELECT * FROM contrasts WHERE mode = ? ORDER BY zarr_row", [mode])
            )
        ids = self._ids(conditions)
        sel = pd.DataFrame({"_id": ids, "_order": np.arange(len(ids), dtype=np.int64)})
        con = self.con
        con.register("_selection", sel)
        try:
            # two equi-joins (fast), not one join on an OR (a nested loop)
            parts = [
                con.execute(
                    f"SELECT c.*, s._order, s._id FROM contrasts c JOIN _selection s "
                    f"ON c.{col} = s._id WHERE c.mode = ?",
                    [mode],
                ).df()
                for col in ("condition_id", "contrast_id")
            ]
        finally:
            con.unregister("_selection")
        out = pd.concat(parts, ignore_index=True)
        found = set(out["_id"])
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(ids)} ids have no {mode}-mode contrast in this "
                f"store (first: {missing[:5]}); modes in the store: {self.modes}"
            )
        out = out.sort_values(["_order", "zarr_row"], kind="stable").drop(columns=["_order", "_id"])
        return _biology_columns(out.drop_duplicates("contrast_id").reset_index(drop=True))

    @staticmethod
    def _ids(conditions: pd.DataFrame | pd.Series | Sequence[str]) -> list[str]:
        if isinstance(conditions, pd.DataFrame):
            for col in ("contrast_id", "condition_id"):
                if col in conditions.columns:
                    return conditions[col].astype(str).tolist()
            raise KeyError(
                "expected a DataFrame with a 'condition_id' or 'contrast_id' column (as "
                f"from .conditions() or .contrasts()), found columns {list(conditions)[:10]}"
            )
        return [str(c) for c in _as_list(conditions)]

    def genes(self) -> pd.DataFrame:
        """The union gene axis: ``gene_id``, ``symbol``, ``zarr_col``, datasets."""
        if self._genes is None:  # a store does not change while it is open
            self._genes = self.sql("SELECT * FROM genes ORDER BY zarr_col")
        return self._genes.copy()

    def _gene_columns(self, genes: Sequence[str] | None) -> pd.DataFrame:
        """The genes' rows of :meth:`genes`, in the order asked for.

        A name selects the gene id it is and every gene id that carries it as symbol
        (a name can be both: a dataset whose genes have no Ensembl id keeps its symbols
        as ids, e.g. ``TP53`` beside ``ENSG00000141510`` with symbol ``TP53``); each
        gene id once, where it is first selected.
        """
        table = self.genes()
        if genes is None:
            return table
        wanted = [str(g) for g in _as_list(genes)]
        by_id = pd.Series(np.arange(len(table)), index=table["gene_id"].to_numpy())
        by_symbol = pd.Series(np.arange(len(table))).groupby(table["symbol"].to_numpy()).agg(list)
        pos: list[int] = []
        missing = []
        for g in wanted:
            found = [int(by_id[g])] if g in by_id.index else []
            found += [int(i) for i in by_symbol[g]] if g in by_symbol.index else []
            if not found:
                missing.append(g)
            pos.extend(found)
        if missing:
            raise KeyError(
                f"{len(missing)} genes are not in the compendium (neither gene id nor "
                f"symbol): {missing[:5]}"
            )
        unique = list(dict.fromkeys(pos))  # each gene id once, first selection first
        return table.iloc[unique].reset_index(drop=True)

    # ----------------------------------------------------------- effects

    def _array(self, mode: str, layer: str) -> Any:
        key = f"{mode}/{layer}"
        if key not in self._zarr:
            import zarr

            path = self._layout.zarr(mode)
            if not path.is_dir():
                raise KeyError(f"no {mode}-mode array in this store; modes: {self.modes}")
            # format 3 row-sharded (this version) or format 2 (stores of earlier versions)
            group = zarr.open_group(str(path), mode="r", use_consolidated=None)
            self._zarr[key] = group[layer]
        return self._zarr[key]

    def effects(
        self,
        conditions: pd.DataFrame | Sequence[str] | None = None,
        *,
        genes: Sequence[str] | None = None,
        layer: str = "logFC",
        mode: Literal["group", "separate"] = "group",
    ) -> ad.AnnData:
        """Effects of ``conditions`` (rows) × ``genes`` (columns) for one layer.

        Only the requested rows and genes are read: from the consolidated Zarr array
        when ``layer`` is consolidated (see :attr:`layers`), else from the Effects
        files. Genes a dataset did not measure are NaN.

        Parameters
        ----------
        conditions
            A frame from :meth:`conditions` or :meth:`contrasts`, or condition or
            contrast ids; ``None``: all contrasts of ``mode``.
        genes
            Gene ids or symbols (a symbol selects every gene id that carries it, e.g.
            an Entrez and an Ensembl id from two datasets); ``None``: every gene of
            the union axis.
        layer
            An Effects layer (``logFC``, ``t``, ``P.Value``, ...), or ``stdev.scaled``
            when the store has it (built with ``stdev_scaled``).
        mode
            ``group``: one row per condition; ``separate``: one row per replicate
            contrast of each condition.

        Returns
        -------
        anndata.AnnData
            ``X`` float32; ``obs`` the contrasts (index ``contrast_id``), ``var`` the
            genes (index ``gene_id``, ``symbol``).
        """
        import anndata as ad

        if layer not in (*EFFECT_LAYERS, STDEV_SCALED):
            raise KeyError(
                f"unknown layer {layer!r}; Effects layers: {[*EFFECT_LAYERS, STDEV_SCALED]}"
            )
        self._check_unchanged()
        rows = self.contrasts(conditions, mode=mode)
        gene_table = self._gene_columns(genes)
        cols = gene_table["zarr_col"].to_numpy(dtype=np.int64)
        zrows = rows["zarr_row"].to_numpy(dtype=np.int64)
        if layer in self.layers and len(zrows):
            x = self._read_zarr(mode, layer, zrows, cols, all_genes=genes is None)
        elif len(zrows):
            x = self._read_files(rows, layer, gene_table)
        else:
            x = np.zeros((0, len(cols)), dtype=np.float32)
        self._check_unchanged()  # after reading: a commit that began meanwhile shows here
        obs = rows.set_index(pd.Index(rows["contrast_id"].astype(str), name="contrast_id"))
        obs = obs.drop(columns=["contrast_id"])
        var = gene_table.set_index(pd.Index(gene_table["gene_id"].astype(str), name="gene_id"))
        var = var[["symbol", "zarr_col", "n_datasets"]]
        out = ad.AnnData(X=x, obs=obs, var=var)
        out.uns["perturbridge"] = {
            "kind": "effects_slice",
            "layer": layer,
            "mode": mode,
            "store": str(self.path),
            "build_key": self.manifest.get("build_key", ""),
        }
        return out

    def _read_zarr(
        self, mode: str, layer: str, zrows: np.ndarray, cols: np.ndarray, *, all_genes: bool
    ) -> np.ndarray:
        arr = self._array(mode, layer)
        uniq, inverse = np.unique(zrows, return_inverse=True)
        layout = row_sharded_layout(arr)
        if layout is not None:
            # only these rows; each shard checked against the manifest as it is opened
            block = read_rows(
                layout,
                uniq,
                threads=self.read_threads,
                expected=self._shard_digests(mode, layer),
                missing="error",
            )
        elif len(uniq) and uniq[-1] - uniq[0] + 1 == len(uniq):
            block = arr[int(uniq[0]) : int(uniq[-1]) + 1]  # one contiguous read
        else:
            block = arr.oindex[uniq, :]
        block = np.asarray(block, dtype=np.float32)
        if len(inverse) != len(uniq) or (np.diff(inverse) != 1).any():
            block = block[inverse]  # repeated or unsorted rows
        return block if all_genes else np.ascontiguousarray(block[:, cols])

    def _shard_digests(self, mode: str, layer: str) -> Any:
        """Shard number → :class:`ShardDigest` of one array, from the manifest (``None``
        for stores written before shards had checksums)."""
        files = self.manifest.get("zarr", {}).get("files")
        if not files:
            return None
        key = f"{mode}/{layer}"
        cached = self._digests.get(key)
        if cached is None:
            prefix = f"{self._layout.rel(self._layout.zarr(mode))}/{layer}/c/"
            cached = {}
            for rel, rec in files.items():
                if rel.startswith(prefix) and "index_crc32c" in rec:
                    shard = int(rel[len(prefix) :].split("/", 1)[0])
                    cached[shard] = ShardDigest(
                        int(rec["bytes"]), str(rec["sha256"]), str(rec["index_crc32c"])
                    )
            self._digests[key] = cached
        return cached

    def _check_file(self, rel: str) -> None:
        """Check an Effects file's size and SHA-256 against the manifest (once per open:
        the whole file is read)."""
        if rel in self._checked_files:
            return
        rec = self.manifest.get("files", {}).get(rel)
        if rec is not None:
            problem, _ = check_file(self.path, rel, rec)
            if problem is not None:
                raise StoreError(
                    f"{self.path}: {rel} does not match the store's manifest ({problem}); "
                    f"run `perturbridge repair {self.path}`"
                )
        self._checked_files.add(rel)

    def _store_files(self) -> StoreFiles:
        if self._files is None:
            self._files = StoreFiles(self.path, self.manifest)
        return self._files

    def _read_files(self, rows: pd.DataFrame, layer: str, genes: pd.DataFrame) -> np.ndarray:
        """A layer that is not in the arrays, from the Effects files through the store's
        reader (:class:`~perturbridge.compendium.store.StoreEffects`: a layer the file
        does not keep is derived from what the store holds)."""
        out = np.full((len(rows), len(genes)), np.nan, dtype=np.float32)
        gene_pos = pd.Series(np.arange(len(genes)), index=genes["gene_id"].astype(str))
        for rel, grp in rows.groupby("effects_file", sort=True):
            self._check_file(str(rel))
            src = self._store_files().open(str(rel))
            if layer not in src.layers:
                raise KeyError(
                    f"{rel}: no layer {layer!r} in this store (layers: {list(src.layers)})"
                    + ("; build with `stdev_scaled = true` to have it" if layer == STDEV_SCALED
                       else "")
                )  # fmt: skip
            file_pos = gene_pos.reindex(src.var.index.astype(str)).to_numpy()
            have = ~np.isnan(file_pos)
            file_rows = grp["file_row"].to_numpy(dtype=np.int64)
            values = np.asarray(src.read(layer, file_rows), dtype=np.float32)
            target = grp.index.to_numpy()
            out[np.ix_(target, file_pos[have].astype(np.int64))] = values[:, have]
        return out

    # ----------------------------------------------------------- summary

    def summary(self) -> dict[str, Any]:
        """What a person wants to know first: datasets, counts, assays, ledger totals."""
        counts = {
            "datasets": self.sql("SELECT count(*) AS n FROM datasets")["n"].iloc[0],
            "samples": self.sql("SELECT count(*) AS n FROM samples")["n"].iloc[0],
            "compounds": self.sql("SELECT count(*) AS n FROM compounds")["n"].iloc[0],
            "contexts": self.sql("SELECT count(*) AS n FROM contexts")["n"].iloc[0],
            "conditions": self.sql("SELECT count(*) AS n FROM conditions")["n"].iloc[0],
            "genes": self.sql("SELECT count(*) AS n FROM genes")["n"].iloc[0],
        }
        contrasts = self.sql(
            "SELECT mode, count(*) AS n FROM contrasts GROUP BY mode ORDER BY mode"
        )
        return {
            "path": str(self.path),
            "build_key": self.manifest.get("build_key"),
            "version": self.manifest.get("versions", {}).get("perturbridge"),
            "counts": {k: int(v) for k, v in counts.items()},
            "contrasts": dict(zip(contrasts["mode"], contrasts["n"].astype(int), strict=True)),
            "assays": sorted(self.sql("SELECT DISTINCT assay FROM datasets")["assay"].tolist()),
            "datasets": self.sql(
                "SELECT dataset, source, assay, value_kind, n_samples, n_contexts, n_conditions, "
                "n_contrasts_group, n_contrasts_separate, de_method FROM datasets ORDER BY dataset"
            ),
            "ledger": self.sql(
                "SELECT stage, status, reason, count(*) AS n FROM ledger "
                "GROUP BY stage, status, reason ORDER BY stage, status DESC, n DESC"
            ),
            "layers": self.layers,
            "modes": self.modes,
        }


def _biology_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the biology columns (``unknown`` for a store built before them)."""
    for col in CATALOG_BIOLOGY:
        if col not in frame.columns:
            frame[col] = UNKNOWN
    return frame


def _biology_filter(column: str, value: str | Sequence[str]) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of a biology filter of :meth:`Compendium.conditions`."""
    if column not in BIOLOGY_COLUMNS:
        raise TypeError(
            f"conditions() got an unexpected keyword argument {column!r}; filters: compound, "
            f"context, dataset, dose, time, refs and the biology columns {list(BIOLOGY_COLUMNS)}"
        )
    values = [str(v).strip().lower() for v in _as_list(value)]
    allowed = BIOLOGY_VOCABULARIES.get(column)
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{column} must be one of {list(allowed)}, found {bad}")
    columns = [column]
    if f"{column}_ontology_term_id" in BIOLOGY_COLUMNS:
        columns.append(f"{column}_ontology_term_id")
    clause = " OR ".join(f"lower({c}) IN (SELECT unnest(?::VARCHAR[]))" for c in columns)
    return f"({clause})", [values] * len(columns)


@lru_cache(maxsize=2)
def _store_resolver(path: str, manifest_mtime: float) -> CompoundResolver:
    return CompoundResolver.from_store(RefStoreReader.open(path))


def _compound_aliases(
    values: list[str], refs: str | os.PathLike[str] | CompoundResolver
) -> list[str]:
    """The parent InChIKeys that ``values`` resolve to (those not among them; the
    InChIKey of a reference record known only by its key)."""
    if isinstance(refs, CompoundResolver):
        resolver = refs
    else:
        path = Path(refs).resolve()
        manifest = path / "manifest.json"
        mtime = manifest.stat().st_mtime if manifest.is_file() else 0.0
        resolver = _store_resolver(str(path), mtime)
    out = resolver.resolve(values)
    ok = out[out["status"] == "resolved"]
    keys = ok["parent_inchikey"].fillna(ok["inchikey"]).dropna()  # no structure: the key
    return sorted(set(map(str, keys)) - set(values))
