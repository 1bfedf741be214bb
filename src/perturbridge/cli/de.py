"""``perturbridge de`` and ``perturbridge pseudobulk``: Samples to Effects, cells to
pseudobulks."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from ._common import Mode, check_out_file, console, fail, ledger_table, user_errors

if TYPE_CHECKING:
    from ..schema import DEEngine, ReplicateMode

__all__ = ["Engine", "register"]


#: Who computes the statistics.
Engine = StrEnum("Engine", ["ours", "r"])


#: The library's engine (``perturbridge.schema.DEEngine``) of each ``--engine``.
_ENGINES: dict[Engine, DEEngine] = {Engine.ours: "python", Engine.r: "r"}


def _read_samples(path: Path) -> Any:
    """A Samples .h5ad for ``de``, or a ValueError saying what the file is instead."""
    import anndata as ad

    if not path.is_file():
        raise FileNotFoundError(f"Samples file not found: {path}")
    try:
        adata = ad.read_h5ad(path)
    except OSError as err:
        raise ValueError(
            f"{path} is not an .h5ad (AnnData) file ({err}); `de` reads Samples written by "
            "`perturbridge ingest` or `perturbridge pseudobulk` (a GCT/GCTX file is ingested "
            "first: perturbridge ingest l1000 --level3 FILE --out samples.h5ad)"
        ) from err
    kind = adata.uns.get("perturbridge", {}).get("kind")
    if kind == "effects" or "logFC" in adata.layers:
        raise ValueError(
            f"{path} holds Effects (the output of `de`: one row per contrast), not Samples; "
            "run `de` on the Samples file it was computed from"
        )
    return adata


def de(
    samples: Annotated[Path, typer.Argument(help="Samples .h5ad (log expression or counts).")],
    out: Annotated[Path, typer.Option("--out", help="Effects .h5ad to write.")],
    mode: Annotated[
        Mode, typer.Option(help="group: pool replicate wells; separate: one contrast per well.")
    ] = Mode.group,
    engine: Annotated[
        Engine, typer.Option(help="ours (default) or r: the same analysis run by R limma/edgeR.")
    ] = Engine.ours,
    no_robust: Annotated[bool, typer.Option("--no-robust", help="eBayes without robust.")] = False,
    no_trend: Annotated[
        bool, typer.Option("--no-trend", help="limma-trend: eBayes without the trend.")
    ] = False,
    keep_orphan_vehicles: Annotated[
        bool,
        typer.Option(
            "--keep-orphan-vehicles",
            help="Keep vehicles at times with no treated sample in the fit (default: drop "
            "them to the ledger, as the original pipeline did).",
        ),
    ] = False,
    fit_per_control_group: Annotated[
        bool,
        typer.Option(
            "--fit-per-control-group",
            help="One fit per value of the control-matching columns (the original fitted "
            "GDPx2 per cell type x DMSO %), not one per context.",
        ),
    ] = False,
    stdev_scaled: Annotated[
        bool, typer.Option("--stdev-scaled", help="Also write the release's stdev.scaled layer.")
    ] = False,
) -> None:
    """Effects of each treated condition against its matched vehicle.

    Log expression (L1000) gets limma-trend; counts get limma-voom (edgeR filterByExpr,
    TMM, voom). One fit per dataset × cell context.

    Example:

        perturbridge de samples.h5ad --mode group --out effects.h5ad
    """
    from ..de import DEOptions, method_for, run
    from ..io import provenance, write_h5ad

    check_out_file(out)
    options = DEOptions(
        orphan_vehicles="keep" if keep_orphan_vehicles else "drop",
        fit_per_control_group=fit_per_control_group,
        stdev_scaled=stdev_scaled,
        robust=not no_robust,
        trend=False if no_trend else None,
    )
    try:
        adata = _read_samples(samples)
        adata.uns.pop("ledger", None)
        method = method_for(adata)
        res = run(
            adata,
            engine=_ENGINES[engine],
            mode=cast("ReplicateMode", mode.value),
            options=options,
            progress=True,
        )
        res.effects.uns["ledger"] = res.ledger.to_frame()
        res.effects.uns["perturbridge"]["provenance"] = provenance(
            step="de", inputs=[samples], params=res.effects.uns["perturbridge"]["params"]
        )
        write_h5ad(res.effects, out)
    except user_errors(RuntimeError) as err:
        fail(err)
    if len(res.ledger):
        console.print(ledger_table(res.ledger, "conditions and genes"))
    console.print(
        f"wrote {out}: {method.label} ({engine.value}), {res.effects.n_obs:,} contrasts × "
        f"{res.effects.n_vars:,} genes"
    )


def pseudobulk_cmd(
    cells: Annotated[Path, typer.Argument(help="Cells × genes raw counts (.h5ad, CSR).")],
    out: Annotated[Path, typer.Option("--out", help="Pseudobulk .h5ad to write.")],
    groupby: Annotated[
        str, typer.Option(help="Comma-separated obs columns that define a pseudobulk.")
    ] = "plate,well,cell_line,condition",
    min_counts: Annotated[float, typer.Option(help="Drop cells with fewer counts.")] = 0,
    min_genes: Annotated[int, typer.Option(help="Drop cells with fewer detected genes.")] = 0,
    quality_gene: Annotated[
        str | None, typer.Option(help="Nucleus-quality gene, e.g. MALAT1 (var name).")
    ] = None,
    quality_min_fraction: Annotated[
        float, typer.Option(help="Minimum fraction of a cell's counts on the quality gene.")
    ] = 0.0,
    min_cells: Annotated[int, typer.Option(help="Drop pseudobulks with fewer cells.")] = 1,
    chunk_size: Annotated[int, typer.Option(help="Cells read per chunk.")] = 100_000,
    ledger_out: Annotated[
        Path | None, typer.Option("--ledger", help="Also write the per-cell ledger (TSV).")
    ] = None,
) -> None:
    """Sum single-cell counts per plate × well × cell line × condition, streaming.

    Every cell ends in the ledger: kept (with its pseudobulk) or dropped with a reason.

    Example:

        perturbridge pseudobulk plate1.h5ad --out plate1_pb.h5ad --min-cells 10
    """
    from ..io import write_h5ad
    from ..pseudobulk import PseudobulkOptions, pseudobulk

    check_out_file(out)
    try:
        res = pseudobulk(
            cells,
            groupby=[g.strip() for g in groupby.split(",") if g.strip()],
            options=PseudobulkOptions(
                min_counts=min_counts,
                min_genes=min_genes,
                quality_gene=quality_gene,
                quality_min_fraction=quality_min_fraction,
                min_cells=min_cells,
            ),
            chunk_size=chunk_size,
            progress=True,
        )
        write_h5ad(res.counts, out)
        if ledger_out is not None:
            res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
    except user_errors() as err:
        fail(err)
    console.print(ledger_table(res.ledger, f"cells of {cells.name}"))
    console.print(f"wrote {out}: {res.counts.n_obs:,} pseudobulks × {res.counts.n_vars:,} genes")


def register(app: typer.Typer) -> None:
    """Add ``de`` and ``pseudobulk`` to the ``perturbridge`` app."""
    app.command("de")(de)
    app.command("pseudobulk")(pseudobulk_cmd)
