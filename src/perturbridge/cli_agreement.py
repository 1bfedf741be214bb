"""Agreement commands of the ``perturbridge`` CLI: ``agreement`` and ``report``.

A thin layer over :mod:`perturbridge.agreement`; ``cli.py`` adds the commands with
:func:`register`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from .errors import PerturbridgeError

__all__ = ["register"]

console = Console(stderr=False)
err_console = Console(stderr=True)


class IdentityOption(StrEnum):
    """Compound identity of a cross-dataset match."""

    parent = "parent"
    inchikey = "inchikey"
    cid = "cid"


class ZScoreOption(StrEnum):
    """Per-gene standardisation before the metrics."""

    none = "none"
    dataset = "dataset"
    dataset_context = "dataset_context"


class ScoreOption(StrEnum):
    """Retrieval score."""

    euclidean = "euclidean"
    cosine = "cosine"
    spearman = "spearman"


def _fail(err: BaseException) -> NoReturn:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else err
    err_console.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False)
    raise typer.Exit(code=2) from err


def _errors() -> tuple[type[BaseException], ...]:
    return (PerturbridgeError, ValueError, KeyError, FileNotFoundError, FileExistsError)


def _split(metrics: str | None) -> list[str] | None:
    if metrics is None:
        return None
    return [m.strip() for m in metrics.split(",") if m.strip()]


IdentityArg = Annotated[
    IdentityOption, typer.Option(help="Compound identity of a cross-dataset match.")
]
MaxDoseArg = Annotated[
    float, typer.Option("--max-log10-dose", help="Largest |Δ log10 dose| of a matched pair.")
]
MinCompoundsArg = Annotated[
    int, typer.Option("--min-compounds", help="Matched compounds a context × time stratum needs.")
]
AlphaArg = Annotated[float, typer.Option(help="DE genes: adjusted p-value below this.")]
LfcArg = Annotated[
    float | None, typer.Option("--lfc-min", help="DE genes also need |logFC| above this.")
]
ZScoreArg = Annotated[ZScoreOption, typer.Option(help="Per-gene z-scoring before metrics.")]
MetricsArg = Annotated[
    str | None, typer.Option(help="Comma-separated pair metrics (default: all registered).")
]
ScoreArg = Annotated[ScoreOption, typer.Option(help="Retrieval score.")]
PeersArg = Annotated[int, typer.Option("--max-peers", help="Peers per pair.")]
BootArg = Annotated[int, typer.Option("--n-boot", help="Bootstrap draws (0: no intervals).")]
SeedArg = Annotated[int, typer.Option(help="Seed of the bootstrap and the peer choice.")]
DoseSensArg = Annotated[
    bool, typer.Option("--dose-sensitivity", help="Also rerun at dose thresholds 1×/2×/3×/10×.")
]
ProgressArg = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")]


def _options(**kw: Any) -> dict[str, Any]:
    return {
        "identity": kw["identity"].value,
        "max_log10_dose": kw["max_log10_dose"],
        "min_compounds": kw["min_compounds"],
        "alpha": kw["alpha"],
        "lfc_min": kw["lfc_min"],
        "zscore": kw["zscore"].value,
        "metrics": _split(kw["metrics"]),
        "score": kw["score"].value,
        "max_peers": kw["max_peers"],
        "n_boot": kw["n_boot"],
        "seed": kw["seed"],
        "dose_sensitivity": kw["dose_sensitivity"],
    }


def _summary_table(res: Any) -> Table:
    """Cross-dataset summary (all contexts): observed against the centroid and peers.

    Retrieval rows compare with the exact random floor (``norm_rank``: lower is
    better). The report and ``cross_summary`` hold every baseline and context.
    """
    cs = res.cross_summary
    table = Table(title="cross-dataset agreement, all contexts (Δ = observed − baseline)")
    for col in ("datasets", "metric", "observed", "centroid", "Δ [95% CI]", "Δ peers"):
        table.add_column(col, no_wrap=col in ("datasets", "metric"))
    if not len(cs):
        return table
    sel = cs[cs["level"] == "all"]

    def delta(r: Any) -> str:
        return f"{r.delta:+.3f} [{r.delta_low:+.3f}, {r.delta_high:+.3f}]"

    is_retrieval = sel["metric"].str.startswith("retrieval")
    pair = sel[(sel["direction"] == "a_to_b") & ~is_retrieval]
    for (a, b, metric), grp in pair.groupby(["dataset_a", "dataset_b", "metric"], sort=False):
        by = {r.baseline: r for r in grp.itertuples(index=False)}
        cen, peer = by.get("source_centroid"), by.get("peer_mean")
        first = next(iter(by.values()))
        table.add_row(
            f"{a} / {b}",
            str(metric),
            f"{first.observed:.3f}",
            f"{cen.baseline_value:.3f}" if cen is not None else "",
            delta(cen) if cen is not None else "",
            f"{peer.delta:+.3f}" if peer is not None else "",
        )
    retr = sel[(sel["direction"] == "both") & is_retrieval]
    if len(retr):
        table.caption = (
            "* retrieval against the exact random floor (in the centroid column); "
            "norm_rank: lower is better"
        )
    for r in retr.itertuples(index=False):
        table.add_row(
            f"{r.dataset_a} / {r.dataset_b}",
            str(r.metric).removeprefix("retrieval_") + " *",
            f"{r.observed:.3f}",
            f"{r.baseline_value:.3f}",
            delta(r),
            "",
        )
    return table


def agreement_cmd(
    store: Annotated[Path, typer.Argument(help="A compendium store.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tables).")],
    identity: IdentityArg = IdentityOption.parent,
    max_log10_dose: MaxDoseArg = 1.0,
    min_compounds: MinCompoundsArg = 10,
    alpha: AlphaArg = 0.05,
    lfc_min: LfcArg = None,
    zscore: ZScoreArg = ZScoreOption.none,
    metrics: MetricsArg = None,
    score: ScoreArg = ScoreOption.euclidean,
    max_peers: PeersArg = 50,
    n_boot: BootArg = 2000,
    seed: SeedArg = 0,
    dose_sensitivity: DoseSensArg = False,
    progress: ProgressArg = True,
) -> None:
    """Agreement diagnostics of a store: cross-dataset pairs with centroid and peer
    baselines, retrieval, replicate agreement; tables as Parquet and CSV.

    Example:

        perturbridge agreement compendium --out agreement --n-boot 2000
    """
    from .agreement import run_agreement

    opts = _options(
        identity=identity,
        max_log10_dose=max_log10_dose,
        min_compounds=min_compounds,
        alpha=alpha,
        lfc_min=lfc_min,
        zscore=zscore,
        metrics=metrics,
        score=score,
        max_peers=max_peers,
        n_boot=n_boot,
        seed=seed,
        dose_sensitivity=dose_sensitivity,
    )
    try:
        res = run_agreement(store, out=out, progress=progress, **opts)
    except _errors() as err:
        _fail(err)
    console.print(_summary_table(res))
    counts = res.info.get("counts", {})
    console.print(
        f"{counts.get('pairs', 0):,} matched pairs, {counts.get('retrieval_queries', 0):,} "
        f"retrieval queries, {counts.get('replicate_conditions', 0):,} conditions with "
        f"replicates; wrote {out}"
    )


def report_cmd(
    store: Annotated[Path, typer.Argument(help="A compendium store.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML report to write.")],
    agreement: Annotated[
        Path | None,
        typer.Option("--agreement", help="An agreement folder (default: compute it now)."),
    ] = None,
    figures: Annotated[
        Path | None, typer.Option("--figures", help="Also write the figures into this folder.")
    ] = None,
    identity: IdentityArg = IdentityOption.parent,
    max_log10_dose: MaxDoseArg = 1.0,
    min_compounds: MinCompoundsArg = 10,
    alpha: AlphaArg = 0.05,
    lfc_min: LfcArg = None,
    zscore: ZScoreArg = ZScoreOption.none,
    metrics: MetricsArg = None,
    score: ScoreArg = ScoreOption.euclidean,
    max_peers: PeersArg = 50,
    n_boot: BootArg = 2000,
    seed: SeedArg = 0,
    dose_sensitivity: DoseSensArg = False,
) -> None:
    """An HTML report of a store: datasets, coverage and the agreement diagnostics
    (read from --agreement, or computed with the options given).

    Example:

        perturbridge report compendium --out report.html --agreement agreement
    """
    opts = _options(
        identity=identity,
        max_log10_dose=max_log10_dose,
        min_compounds=min_compounds,
        alpha=alpha,
        lfc_min=lfc_min,
        zscore=zscore,
        metrics=metrics,
        score=score,
        max_peers=max_peers,
        n_boot=n_boot,
        seed=seed,
        dose_sensitivity=dose_sensitivity,
    )
    try:
        from .agreement.report import write_report

        path = write_report(store, out, agreement_dir=agreement, options=opts, figures_dir=figures)
    except (*_errors(), ImportError) as err:  # type: ignore[misc]
        _fail(err)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the agreement commands to the ``perturbridge`` app."""
    app.command("agreement")(agreement_cmd)
    app.command("report")(report_cmd)
