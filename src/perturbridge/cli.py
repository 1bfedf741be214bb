"""The ``perturbridge`` command line: a thin layer over the public API."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from ._version import __version__
from .errors import PerturbridgeError
from .ledger import Ledger

app = typer.Typer(
    name="perturbridge",
    help="Harmonize small-molecule perturbation transcriptomics and compute limma effects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(
    help="Read an upstream dataset into validated Samples.", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")
console = Console(stderr=False)
err_console = Console(stderr=True)


class Mode(StrEnum):
    """Replicate modes of the DE step."""

    group = "group"
    separate = "separate"


class Engine(StrEnum):
    """Who computes the statistics."""

    ours = "ours"
    r = "r"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def _ledger_table(ledger: Ledger, title: str) -> Table:
    table = Table(title=title)
    for col in ("stage", "status", "reason", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for row in ledger.summary().itertuples(index=False):
        table.add_row(row.stage, row.status, row.reason or "-", f"{row.n:,}")
    return table


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=2) from err


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


@ingest_app.command("l1000")
def ingest_l1000(
    level3: Annotated[Path, typer.Option("--level3", help="Level 3 .gctx or .gct file.")],
    out: Annotated[Path, typer.Option("--out", help="Samples .h5ad to write.")],
    inst_info: Annotated[
        Path | None, typer.Option("--inst-info", help="Sample metadata table (TSV/CSV).")
    ] = None,
    dataset: Annotated[str, typer.Option(help="Dataset name.")] = "lincs_l1000",
    ledger_out: Annotated[
        Path | None, typer.Option("--ledger", help="Also write the ledger as TSV here.")
    ] = None,
) -> None:
    """Ingest L1000 level 3 into Samples; every well ends in the ledger.

    Example:

        perturbridge ingest l1000 --level3 test_l1000.gct --out samples.h5ad
    """
    from .io import write_h5ad
    from .sources import read_l1000

    try:
        res = read_l1000(level3, inst_info=inst_info, dataset=dataset)
        res.samples.uns["ledger"] = res.ledger.to_frame()
        write_h5ad(res.samples, out)
        if ledger_out is not None:
            res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError) as err:
        _fail(err)
    console.print(_ledger_table(res.ledger, f"ledger of {level3.name}"))
    console.print(
        f"wrote {out}: {res.samples.n_obs:,} samples × {res.samples.n_vars:,} genes "
        f"({int(res.samples.obs['is_control'].sum()):,} vehicle controls)"
    )


@app.command("de")
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
) -> None:
    """Effects of each treated condition against its matched vehicle.

    Log expression (L1000) gets limma-trend; counts get limma-voom (edgeR filterByExpr,
    TMM, voom). One fit per dataset × cell context.

    Example:

        perturbridge de samples.h5ad --mode group --out effects.h5ad
    """
    import anndata as ad

    from .de import limma_trend
    from .de.voom import limma_voom
    from .io import provenance, write_h5ad

    try:
        adata = ad.read_h5ad(samples)
        adata.uns.pop("ledger", None)
        kind = adata.uns.get("perturbridge", {}).get("value_kind")
        method: Literal["trend", "voom"] = "voom" if kind == "counts" else "trend"
        if engine is Engine.r:
            from .de.r_limma import limma_r

            res = limma_r(adata, method=method, mode=mode.value, progress=True)
        elif method == "voom":
            res = limma_voom(adata, mode=mode.value, robust=not no_robust, progress=True)
        else:
            res = limma_trend(
                adata, mode=mode.value, robust=not no_robust, trend=not no_trend, progress=True
            )
        res.effects.uns["ledger"] = res.ledger.to_frame()
        res.effects.uns["perturbridge"]["provenance"] = provenance(
            step="de", inputs=[samples], params=res.effects.uns["perturbridge"]["params"]
        )
        write_h5ad(res.effects, out)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        _fail(err)
    if len(res.ledger):
        console.print(_ledger_table(res.ledger, "conditions and genes"))
    console.print(
        f"wrote {out}: limma-{method} ({engine.value}), {res.effects.n_obs:,} contrasts × "
        f"{res.effects.n_vars:,} genes"
    )


@app.command("pseudobulk")
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
    from .io import write_h5ad
    from .pseudobulk import pseudobulk

    try:
        res = pseudobulk(
            cells,
            groupby=[g.strip() for g in groupby.split(",") if g.strip()],
            min_counts=min_counts,
            min_genes=min_genes,
            quality_gene=quality_gene,
            quality_min_fraction=quality_min_fraction,
            min_cells=min_cells,
            chunk_size=chunk_size,
            progress=True,
        )
        write_h5ad(res.counts, out)
        if ledger_out is not None:
            res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError) as err:
        _fail(err)
    console.print(_ledger_table(res.ledger, f"cells of {cells.name}"))
    console.print(f"wrote {out}: {res.counts.n_obs:,} pseudobulks × {res.counts.n_vars:,} genes")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo_out"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 0,
) -> None:
    """Simulate an L1000-like dataset, ingest it, compute effects and score recovery.

    Example:

        perturbridge demo --out demo_out
    """
    from .demo import run_demo

    with console.status("simulating, ingesting and fitting ..."):
        res = run_demo(out, seed=seed, progress=False)
    console.print(_ledger_table(res.ledger, "ledger (every simulated well and condition)"))
    table = Table(title="recovery of the planted effects (group mode)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in res.metrics.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else f"{v:,}")
    console.print(table)
    console.print(
        f"files in {res.out_dir}/: " + ", ".join(sorted(p.name for p in res.files.values()))
    )


@app.command("sources")
def sources() -> None:
    """List the source adapters.

    Example:

        perturbridge sources
    """
    from .sources import list_sources

    table = Table(title="source adapters")
    for col in ("name", "assay", "description"):
        table.add_column(col)
    for row in list_sources().itertuples(index=False):
        table.add_row(row.name, row.assay, row.description)
    console.print(table)


def main() -> None:
    """Entry point of the ``perturbridge`` command."""
    app()


if __name__ == "__main__":
    main()
