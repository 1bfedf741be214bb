"""Read-only SQL over the catalog of a store: a locked DuckDB connection, one
read-only statement at a time, interruptible by Ctrl-C (used by
:class:`~perturbridge.compendium.Compendium`)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._common import StoreError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "DUCKDB_VECTOR",
    "interruptible",
    "locked_connection",
    "read_only_statement",
    "with_limit",
]


#: rows in one DuckDB vector; ``fetch_df_chunk`` counts in vectors
DUCKDB_VECTOR = 2048
#: statement types that only read (DESCRIBE, SHOW, SUMMARIZE, VALUES, FROM … and
#: PIVOT … IN (…) parse as SELECT); PRAGMA only with a name in _READ_PRAGMAS
_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA"})
_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "show_databases",
        "database_list",
        "database_size",
        "storage_info",
        "functions",
        "collations",
        "version",
        "platform",
    }
)
_PRAGMA_NAME = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/)*PRAGMA\s+(\w+)", re.I | re.S)
_REFUSED_WHY = (
    "the store is read-only, and a query reads the catalog tables only (no files, "
    "network or extensions); run SELECT/WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN or "
    "PRAGMA table_info('<table>'), and save a result with "
    "`perturbridge query STORE SQL --format tsv > file`"
)

_T = TypeVar("_T")


def locked_connection(catalog: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per Parquet file of ``catalog``,
    then locked: external access off (the catalog files stay readable as its only
    allowed paths), no extension install or autoload, no progress bar on the terminal,
    configuration locked."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        for table, path in catalog.items():
            con.read_parquet(str(path)).create_view(table)
        con.execute("SET allowed_paths = ?", [[str(path) for path in catalog.values()]])
        for setting in (
            "enable_progress_bar = false",
            "enable_external_access = false",
            "autoinstall_known_extensions = false",
            "autoload_known_extensions = false",
            "allow_community_extensions = false",
            "lock_configuration = true",
        ):
            con.execute(f"SET {setting}")
    except BaseException:
        con.close()
        raise
    return con


def read_only_statement(query: str) -> duckdb.Statement:
    """The one read-only statement of ``query``; :class:`StoreError` (before it runs)
    for several statements or one that is not a read."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as err:
        raise StoreError(f"cannot parse the query: {err}") from err
    if len(statements) != 1:
        raise StoreError(
            f"a query is one SQL statement, found {len(statements)} in {query[:200]!r}"
        )
    (statement,) = statements
    kind = statement.type.name
    if kind not in _READ_STATEMENTS:
        name = {"LOAD": "INSTALL/LOAD", "SET": "SET/RESET/USE", "MULTI": "PIVOT"}.get(kind, kind)
        hint = (
            "; give PIVOT the values it makes columns of (PIVOT … ON col IN (…))"
            if kind == "MULTI"
            else ""
        )
        raise StoreError(f"{name} statements are refused: {_REFUSED_WHY}{hint}")
    if kind == "PRAGMA":
        match = _PRAGMA_NAME.match(query)
        pragma = match.group(1).lower() if match else "?"
        if pragma not in _READ_PRAGMAS:
            raise StoreError(
                f"PRAGMA {pragma} is refused: {_REFUSED_WHY}; the PRAGMAs that run are "
                f"{sorted(_READ_PRAGMAS)}"
            )
    return statement


def with_limit(statement: duckdb.Statement, limit: int | None) -> str | None:
    """``statement`` as ``SELECT * FROM (statement) LIMIT limit``, or ``None`` where it
    cannot be wrapped (not a SELECT, or the wrapped text does not parse as one)."""
    import duckdb

    if limit is None or statement.type.name != "SELECT":
        return None
    text = f"SELECT * FROM (\n{statement.query.rstrip().rstrip(';')}\n) LIMIT {int(limit)}"
    try:
        wrapped = duckdb.extract_statements(text)
    except duckdb.Error:
        return None
    return text if len(wrapped) == 1 and wrapped[0].type.name == "SELECT" else None


def interruptible(con: duckdb.DuckDBPyConnection, call: Callable[[], _T]) -> _T:
    """``call()`` (a DuckDB call on ``con``), stopped by Ctrl-C.

    While DuckDB runs, the calling thread is in C++ where Python's SIGINT handler never
    runs, so Ctrl-C would wait for the query. In the main thread the call therefore runs
    in a helper thread while the main thread waits on an event; a ``KeyboardInterrupt``
    there interrupts the query (``con.interrupt()``), waits for the helper to end and
    re-raises. (Not ``Thread.join``: interrupted, it can report a running thread as
    ended, and the connection would be closed under the query.)
    A ``PermissionException`` (a file outside the catalog) becomes a :class:`StoreError`.
    """
    import duckdb

    def guarded() -> _T:
        try:
            return call()
        except duckdb.PermissionException as err:
            found = str(err).splitlines()[0]
            raise StoreError(
                "refused: a query reads the catalog tables only, no other files, network "
                f"or extensions ({found})"
            ) from err

    if threading.current_thread() is not threading.main_thread():
        return guarded()
    result: list[_T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            result.append(guarded())
        except BaseException as err:  # handed to the caller below
            failure.append(err)
        finally:
            done.set()

    threading.Thread(target=target, name="perturbridge-sql", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        while not done.is_set():
            try:
                done.wait(0.1)
            except KeyboardInterrupt:  # Ctrl-C again while the query stops
                con.interrupt()
        raise
    if failure:
        raise failure[0]
    return result[0]
