"""The ``perturbridge`` app: its options, its command groups and :func:`main`."""

from __future__ import annotations

import errno
import logging
import sys
from typing import Annotated

import typer
from rich.logging import RichHandler

from .._version import __version__
from . import (
    agreement,
    compendium,
    de,
    demo,
    effects,
    ingest,
    models,
    refs,
    search,
    signatures,
)
from ._common import console, err_console

__all__ = ["app", "main"]

app = typer.Typer(
    name="perturbridge",
    help="Harmonize small-molecule perturbation transcriptomics and compute limma effects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def _print_version(value: bool) -> None:
    if value:
        console.print(f"perturbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    _setup_logging(verbose)


# the order of ``perturbridge --help``: commands, then groups
de.register(app)
demo.register(app)
compendium.register(app)
effects.register(app)
signatures.register(app)
search.register(app)
agreement.register(app)
models.register(app)
app.add_typer(ingest.ingest_app, name="ingest")
app.add_typer(refs.refs_app, name="refs")
app.add_typer(ingest.sources_app, name="sources")


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free space (or point --out elsewhere) and run again",
    errno.EDQUOT: "the disk quota is exceeded; free space and run again",
    errno.EROFS: "the file system is read-only; write the output elsewhere",
    errno.EACCES: "permission denied; write the output elsewhere or fix the permissions",
    errno.EPERM: "operation not permitted; check the permissions",
    errno.ENAMETOOLONG: "a file name is too long; use shorter names (e.g. dataset names)",
}


def main() -> None:
    """Entry point of the ``perturbridge`` command.

    Mistakes a user can make are reported by the commands themselves; what the operating
    system refuses (a full disk, a read-only file system, a name that is too long, no
    permission) is reported here as one line with what to do, not as a traceback. Any
    other exception is a bug and keeps its traceback.
    """
    try:
        app()
    except OSError as err:
        if err.errno not in _OS_ADVICE:
            raise
        where = f" ({err.filename})" if err.filename else ""
        err_console.print(
            f"[bold red]error:[/] {err.strerror or err}{where}: {_OS_ADVICE[err.errno]}",
            markup=True,
            highlight=False,
        )
        sys.exit(2)
