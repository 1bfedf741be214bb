"""What every command of the ``perturbridge`` CLI shares: the two consoles, the one
way to fail with a one-line message, the user errors it translates, shared options
and small printing helpers.

This module and the command modules import only typer, rich and light parts of the
package at the top; each command imports the library it calls inside its body, so
that ``perturbridge --help`` starts fast and a light command stays light.
"""

from __future__ import annotations

import numbers
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import PerturbridgeError

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..sources import IngestResult

__all__ = [
    "USER_ERRORS",
    "CompoundFilter",
    "ContextFilter",
    "DatasetFilter",
    "DoseFilter",
    "LedgerOutArg",
    "Mode",
    "RefsArg",
    "TimeFilter",
    "cell",
    "check_out_file",
    "console",
    "err_console",
    "fail",
    "frame_table",
    "ledger_table",
    "print_samples",
    "user_errors",
    "write_samples",
]

#: Standard output: tables and results.
console = Console(stderr=False)
#: Standard error: errors, warnings and logging.
err_console = Console(stderr=True)

#: Exceptions that are a user's mistake (a bad file, option or value): a command
#: reports them as one line and exits with 2; anything else is a bug with a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    PerturbridgeError,
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
)


def user_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """:data:`USER_ERRORS` and the ``extra`` exceptions a command also translates."""
    return USER_ERRORS + extra


def fail(message: str | BaseException, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on standard error and exit with ``code``.

    An exception is printed by its message (a ``KeyError`` without its quotes) and
    becomes the cause of the exit.
    """
    cause = message if isinstance(message, BaseException) else None
    text = str(message)
    if isinstance(message, KeyError) and message.args:  # str() of a KeyError quotes it
        text = str(message.args[0])
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)
    raise typer.Exit(code=code) from cause


#: Replicate modes (the values of ``perturbridge.schema.ReplicateMode``).
Mode = StrEnum("Mode", ["group", "separate"])


RefsArg = Annotated[
    Path | None,
    typer.Option(
        "--refs",
        help="Reference store (perturbridge refs build): resolve compounds, cells and genes "
        "(prints how many resolved; the store goes in the provenance).",
    ),
]
#: Filters of a store's conditions (``Compendium.conditions``), each repeatable.
CompoundFilter = Annotated[
    list[str] | None,
    typer.Option("--compound", help="Compound id, InChIKey, upstream id or name (repeatable)."),
]
ContextFilter = Annotated[
    list[str] | None, typer.Option("--context", help="Cell context id or name (repeatable).")
]
DatasetFilter = Annotated[
    list[str] | None, typer.Option("--dataset", help="Dataset name (repeatable).")
]
DoseFilter = Annotated[list[float] | None, typer.Option("--dose", help="Dose in µM (repeatable).")]
TimeFilter = Annotated[
    list[float] | None, typer.Option("--time", help="Time in hours (repeatable).")
]
LedgerOutArg = Annotated[
    Path | None, typer.Option("--ledger", help="Also write the ledger as TSV here.")
]


def check_out_file(out: Path, *, option: str = "--out") -> None:
    """Refuse an output path that cannot be written, before any computation: a folder,
    a file name longer than the file system allows, a missing or read-only folder."""
    if len(out.name.encode()) > 255:  # first: stat() of such a name raises
        fail(f"{option}: the file name is too long ({len(out.name)} characters)")
    if out.is_dir():
        fail(f"{option} {out} is a folder; give the path of the file to write")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        fail(f"{option} {out}: the folder {parent} is not writable")


def ledger_table(ledger: Ledger, title: str) -> Table:
    """The ledger summary: stage, status, reason, count."""
    table = Table(title=title)
    for col in ("stage", "status", "reason", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for row in ledger.summary().itertuples(index=False):
        table.add_row(str(row.stage), str(row.status), str(row.reason or "-"), f"{row.n:,}")
    return table


def frame_table(df: Any, title: str | None = None, *, limit: int | None = None) -> Table:
    """A data frame as a table, its numbers with thousands separators."""
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), overflow="fold")
    shown = df if limit is None else df.head(limit)
    for row in shown.itertuples(index=False):
        table.add_row(*[cell(v) for v in row])
    return table


def cell(v: Any) -> str:
    """One value of a table: ``-`` when missing, numbers formatted."""
    if v is None or type(v).__name__ == "NAType":  # pandas.NA, without importing pandas
        return "-"
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        return f"{float(v):.6g}"
    if hasattr(v, "tolist") and not isinstance(v, str):
        return ", ".join(map(str, v.tolist()))
    return str(v)


def write_samples(res: IngestResult, out: Path, *, ledger_out: Path | None) -> None:
    """Write the Samples of an ingest (their ledger in ``uns``) and the ledger TSV when
    asked."""
    from ..io import write_h5ad

    res.samples.uns["ledger"] = res.ledger.to_frame()
    write_h5ad(res.samples, out)
    if ledger_out is not None:
        res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)


def print_samples(res: IngestResult, out: Path, *, label: str) -> None:
    """Print the ledger of an ingest and what was written."""
    console.print(ledger_table(res.ledger, f"ledger of {label}"))
    console.print(
        f"wrote {out}: {res.samples.n_obs:,} samples × {res.samples.n_vars:,} genes "
        f"({int(res.samples.obs['is_control'].sum()):,} vehicle controls)"
    )
