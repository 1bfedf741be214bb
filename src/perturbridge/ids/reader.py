"""Reading a local reference store: its manifest and its Parquet tables.

:class:`RefStoreReader` opens a store folder written by
:meth:`perturbridge.ids.store.RefStore.build` and reads its tables. It is the bottom of
:mod:`perturbridge.ids`: the resolvers (genes, cells, compounds) read stores through it,
and the builder (:mod:`perturbridge.ids.store`), which needs the resolvers to link LINCS
cell ids, sits above them. The store layout is described in :mod:`perturbridge.ids.store`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pandas as pd

from .._version import __version__
from ..errors import PerturbridgeError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["MANIFEST", "STORE_FORMAT", "RefStoreReader", "StoreError"]

#: Version of the store layout; :meth:`RefStoreReader.open` refuses newer stores.
STORE_FORMAT = 1
MANIFEST = "manifest.json"


class StoreError(PerturbridgeError, ValueError):
    """A reference store is missing, incomplete, or cannot be written where asked."""


class RefStoreReader:
    """A reference store on disk, read only: Parquet tables plus ``manifest.json``.

    Open one with :meth:`open`; tables are read on demand. The resolvers read stores
    through this class; :class:`perturbridge.ids.store.RefStore` adds building.

    Examples
    --------
    >>> store = RefStoreReader.open("refs")  # doctest: +SKIP
    >>> store.table("genes", columns=["hgnc_id", "symbol"]).head(1)  # doctest: +SKIP
          hgnc_id symbol
    0      HGNC:5   A1BG
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"RefStore({str(self.path)!r}, tables={self.tables})"

    # ----------------------------------------------------------------------------------
    # opening and reading

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """Open a store built by :meth:`build`.

        Raises
        ------
        StoreError
            If ``path`` is not a store, was written by a newer store format, or lacks a
            table its manifest lists.
        """
        p = Path(path)
        mpath = p / MANIFEST
        if not mpath.is_file():
            raise StoreError(
                f"{p} is not a reference store (no {MANIFEST}); build one with "
                "`perturbridge refs build --from DIR --out REFS`"
            )
        try:
            manifest = json.loads(mpath.read_text())
        except ValueError as err:
            raise StoreError(f"{mpath}: not valid JSON ({err})") from err
        fmt = manifest.get("store_format")
        if not isinstance(fmt, int) or fmt > STORE_FORMAT:
            raise StoreError(
                f"{p}: store format {fmt!r} is not supported by perturbridge {__version__} "
                f"(reads formats <= {STORE_FORMAT}); rebuild the store or upgrade"
            )
        missing = [t for t in manifest.get("tables", {}) if not (p / f"{t}.parquet").is_file()]
        if missing:
            raise StoreError(f"{p}: tables {missing} are listed in {MANIFEST} but missing")
        return cls(p, manifest)

    @property
    def tables(self) -> list[str]:
        """Names of the tables in the store."""
        return sorted(self.manifest.get("tables", {}))

    def table(self, name: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read one table (optionally some columns only).

        Raises
        ------
        KeyError
            If the store has no such table; the message lists those it has.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._check_table(name)
        tbl = pq.read_table(
            self.path / f"{name}.parquet", columns=list(columns) if columns else None
        )
        mapping = {pa.int64(): pd.Int64Dtype()}
        df = tbl.to_pandas(types_mapper=mapping.get)
        return df

    def arrow_table(self, name: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        """One table as an Arrow table (no conversion to pandas: a tenth of the time for
        a large table of strings); the errors of :meth:`table`."""
        import pyarrow.parquet as pq

        self._check_table(name)
        return pq.read_table(
            self.path / f"{name}.parquet", columns=list(columns) if columns else None
        )

    def _check_table(self, name: str) -> None:
        if name not in self.manifest.get("tables", {}):
            raise KeyError(
                f"reference store {self.path} has no table {name!r}; it has {self.tables}. "
                "Rebuild it with the upstream file that provides it (see `perturbridge refs "
                "info`)"
            )

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table."""
        import duckdb

        con = duckdb.connect()
        for name in self.tables:
            file = str((self.path / f"{name}.parquet").resolve()).replace("'", "''")
            con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{file}')")
        return con
