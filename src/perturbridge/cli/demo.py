"""``perturbridge demo``: simulate every assay family, ingest, compute effects, build a
compendium, score agreement and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._common import console, ledger_table
from .agreement import agreement_table
from .compendium import info_cmd

__all__ = ["register"]


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo_out"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 0,
    l1000_only: Annotated[
        bool, typer.Option("--l1000-only", help="Only the detailed L1000 demo.")
    ] = False,
    compendium: Annotated[
        bool,
        typer.Option(
            "--compendium/--no-compendium",
            help="Also build a compendium of every family through a plan file.",
        ),
    ] = True,
    agreement: Annotated[
        bool,
        typer.Option(
            "--agreement/--no-agreement",
            help="End with agreement diagnostics and the HTML report of a simulated "
            "multi-assay compendium.",
        ),
    ] = True,
) -> None:
    """Simulate every assay family in its upstream format, ingest, compute effects, score.

    First a detailed L1000 run (ledger and recovery metrics), then one small dataset per
    source adapter (L1000, OP3, DRUG-seq MoA Box, VCPI, GDPx2, sci-Plex3, Tahoe-100M,
    CIGS, DILImap, generic) written in its upstream layout, ingested, analysed with
    limma-voom or limma-trend, with per-source ledger counts and recovery; then a
    compendium of every family built from a plan file; last, agreement diagnostics of a
    simulated multi-assay compendium (a planted shared effect seen through assay
    distortions) and the HTML report (``<out>/report.html``).

    Example:

        perturbridge demo --out demo_out
    """
    from .._demo.families import run_demo_all, summary_table
    from .._demo.l1000 import run_demo

    with console.status("simulating, ingesting and fitting ..."):
        res = run_demo(out, seed=seed, progress=False)
    console.print(ledger_table(res.ledger, "ledger (every simulated well and condition)"))
    table = Table(title="recovery of the planted effects (group mode)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in res.metrics.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else f"{v:,}")
    console.print(table)
    console.print(
        f"files in {res.out_dir}/: " + ", ".join(sorted(p.name for p in res.files.values()))
    )
    if l1000_only:
        return
    with console.status("every source family: simulating upstream files, ingesting, fitting ..."):
        fam = summary_table(run_demo_all(out / "families", seed=seed))
    table = Table(title="one simulated dataset per source (ledger counts and recovery)")
    cols = ["source", "assay", "samples", "genes", "contrasts", "recovery_r"]
    for col in [*cols, "kept", "dropped (stage/reason: n)"]:
        table.add_column(col, overflow="fold")
    for row in fam.itertuples(index=False):
        table.add_row(
            *(str(getattr(row, c)) for c in cols),
            f"{row.ledger_kept:,}",
            str(row.skipped or row.dropped_reasons),
        )
    console.print(table)
    console.print(
        "recovery_r: Pearson r of estimated vs planted logFC over matched contrasts × genes; "
        f"files in {out / 'families'}/<source>/ and {out / 'families' / 'families.tsv'}"
    )
    if not compendium:
        return
    from .._demo.compendium import run_demo_compendium

    with console.status("building a compendium of every family from a plan file ..."):
        run_demo_compendium(out / "compendium_demo", seed=seed)
    console.print(
        f"plan: {out / 'compendium_demo' / 'plan.toml'}; "
        f"store: {out / 'compendium_demo' / 'compendium'} (perturbridge info summarizes it):"
    )
    info_cmd(out / "compendium_demo" / "compendium")
    if agreement:
        _demo_agreement(out, seed=seed)


def _demo_agreement(out: Path, *, seed: int) -> None:
    """The demo's last step: agreement diagnostics and the report."""
    from ..agreement import run_agreement
    from ..agreement.options import AgreementOptions
    from ..report import write_report
    from ..simulate import simulate_agreement_store

    folder = out / "agreement_demo"
    with console.status("a multi-assay compendium with a planted shared effect ..."):
        store = simulate_agreement_store(folder / "compendium", seed=seed)
    with console.status("agreement diagnostics (2,000 bootstrap draws) ..."):
        res = run_agreement(
            store, AgreementOptions(seed=seed), out=folder / "agreement", progress=False
        )
    with console.status("writing the report ..."):
        html = write_report(store, out / "report.html", result=res)
    console.print(agreement_table(res))
    console.print(
        "The published pattern: direction agreement above the source-centroid baseline, "
        "DEG-restricted Spearman below it. "
        f"Tables in {folder / 'agreement'}/; the report: {html} (open it in a browser)."
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``perturbridge`` app."""
    app.command("demo")(demo)
