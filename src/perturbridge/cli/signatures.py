"""``perturbridge import-signatures``: precomputed signatures (CMap level 5 GCTX,
signatureSearch HDF5) into a store as datasets of their own (no DE step).

A thin layer over :func:`perturbridge.compendium.import_signatures`; the app adds the
command with :func:`register`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from ._common import console, fail, user_errors

if TYPE_CHECKING:
    from ..compendium.signatures import SignatureKind

__all__ = ["import_signatures_cmd", "register"]

#: The file layouts ``import-signatures`` reads.
Kind = StrEnum("Kind", ["gctx", "signaturesearch"])


def import_signatures_cmd(
    store: Annotated[Path, typer.Argument(help="Store folder to write (new, or a store to join).")],
    file: Annotated[Path, typer.Argument(help="The signature file (.gctx or .h5).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Name of the new dataset.")],
    kind: Annotated[
        Kind, typer.Option("--kind", help="gctx: CMap level 5; signaturesearch: HDF5.")
    ] = Kind.gctx,
    layer: Annotated[
        str, typer.Option("--layer", help="Effects layer that receives the values.")
    ] = "logFC",
) -> None:
    """Add precomputed signatures to a store as a dataset (no DE step).

    Each signature becomes one condition of DATASET, beside the datasets already in
    STORE (built, imported from the release, or other signature files), which are kept.
    A dataset of the same name is updated only when it came from a signature file too.

    Example:

        perturbridge import-signatures compendium level5.gctx --kind gctx --dataset cmap_l5
    """
    from ..compendium import StoreError
    from ..compendium.signatures import import_signatures
    from ..errors import LockError

    try:
        manifest = import_signatures(
            store,
            file,
            kind=cast("SignatureKind", kind.value),
            dataset=dataset,
            layer=layer,
            progress=True,
        )
    except user_errors(ImportError, StoreError, LockError, OSError) as err:
        fail(err)
    entry = next(d for d in manifest["datasets"] if d["name"] == dataset)
    c = manifest["counts"]
    console.print(
        f"{dataset}: {entry['n_signatures'] - entry['n_dropped']:,} signatures "
        f"({entry['n_dropped']} dropped), {entry['n_genes']:,} genes; {store}: "
        f"{c['datasets']} datasets, {c['conditions']:,} conditions, {c['genes']:,} genes",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``import-signatures`` to the ``perturbridge`` app."""
    app.command("import-signatures")(import_signatures_cmd)
