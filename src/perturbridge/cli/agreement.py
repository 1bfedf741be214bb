"""Agreement commands of the ``perturbridge`` CLI: ``agreement`` and ``report``.

A thin layer over :mod:`perturbridge.agreement`; the app adds the commands with
:func:`register`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import console, err_console, fail, user_errors

__all__ = ["agreement_table", "register"]


#: Compound identity of a cross-dataset match.
IdentityOption = StrEnum("IdentityOption", ["parent", "inchikey", "cid"])


#: Per-gene standardisation before the metrics.
ZScoreOption = StrEnum("ZScoreOption", ["none", "dataset", "dataset_context"])


#: Which definitions of agreement to compute.
ProfileOption = StrEnum("ProfileOption", ["perturbridge", "published"])


#: Summary weighting of the published profile.
WeightingOption = StrEnum("WeightingOption", ["auto", "sample_pairs", "condition"])


#: Retrieval score.
ScoreOption = StrEnum("ScoreOption", ["euclidean", "cosine", "spearman"])


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
ProfileArg = Annotated[
    ProfileOption,
    typer.Option(
        help="perturbridge: our definitions; published: the published analysis, exactly "
        "(reads release-layout files: a release tree or a store with imported releases)."
    ),
]
WeightingArg = Annotated[
    WeightingOption,
    typer.Option(
        help="published profile: summary weighting (auto: sample_pairs when every dataset "
        "has its <dataset>_processed.h5ad, else condition)."
    ),
]
DatasetsArg = Annotated[
    str | None,
    typer.Option(help="Comma-separated datasets, in analysis order (default: all)."),
]
ReplicatesArg = Annotated[
    bool, typer.Option("--replicates/--no-replicates", help="Replicate agreement too.")
]
RetrievalArg = Annotated[
    bool,
    typer.Option("--retrieval/--no-retrieval", help="published profile: Table 9 retrieval too."),
]


#: The options of our profile that ``agreement`` and ``report`` share, declared once:
#: name → (typed annotation, default). :func:`with_our_options` adds them to a command.
OUR_OPTIONS: dict[str, tuple[Any, Any]] = {
    "identity": (IdentityArg, IdentityOption.parent),
    "max_log10_dose": (MaxDoseArg, 1.0),
    "min_compounds": (MinCompoundsArg, 10),
    "alpha": (AlphaArg, 0.05),
    "lfc_min": (LfcArg, None),
    "zscore": (ZScoreArg, ZScoreOption.none),
    "metrics": (MetricsArg, None),
    "score": (ScoreArg, ScoreOption.euclidean),
    "max_peers": (PeersArg, 50),
    "n_boot": (BootArg, 2000),
    "seed": (SeedArg, 0),
    "dose_sensitivity": (DoseSensArg, False),
}
#: Options of our profile that the published profile takes too.
_SHARED_WITH_PUBLISHED = frozenset({"n_boot"})


@dataclass(frozen=True)
class OurOptions:
    """The values given for :data:`OUR_OPTIONS` on a command line."""

    values: Mapping[str, Any]

    def keywords(self) -> dict[str, Any]:
        """As keywords of :class:`~perturbridge.agreement.options.AgreementOptions`."""
        out = {k: v.value if isinstance(v, StrEnum) else v for k, v in self.values.items()}
        out["metrics"] = _split(out["metrics"])
        return out

    def changed(self) -> list[str]:
        """The flags given a non-default value that the published profile does not take
        (its definitions are fixed, so they would be silently ignored there)."""
        return [
            "--" + name.replace("_", "-")
            for name, (_, default) in OUR_OPTIONS.items()
            if name not in _SHARED_WITH_PUBLISHED and self.values[name] != default
        ]


def with_our_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with :data:`OUR_OPTIONS` in place of its parameter ``ours``, which
    receives them as one :class:`OurOptions`."""
    sig = inspect.signature(command)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    added = [
        inspect.Parameter(name, kind, annotation=annotation, default=default)
        for name, (annotation, default) in OUR_OPTIONS.items()
    ]
    params: list[inspect.Parameter] = []
    for prm in sig.parameters.values():
        params += added if prm.name == "ours" else [prm]
    if len(params) == len(sig.parameters):
        raise TypeError(f"{command.__name__} has no parameter 'ours'")
    hints = typing.get_type_hints(command, include_extras=True)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        ours = OurOptions({name: kwargs.pop(name) for name in OUR_OPTIONS})
        command(**kwargs, ours=ours)

    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in params]
    )
    wrapper.__annotations__ = {p.name: hints.get(p.name, p.annotation) for p in params} | {
        "return": None
    }
    return wrapper


def agreement_table(res: Any) -> Table:
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
        cen, peer = by.get("cross_centroid_a"), by.get("peer_mean")
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


@with_our_options
def agreement_cmd(
    store: Annotated[Path, typer.Argument(help="A compendium store.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tables).")],
    ours: OurOptions = OurOptions({}),
    progress: ProgressArg = True,
    profile: ProfileArg = ProfileOption.perturbridge,
    weighting: WeightingArg = WeightingOption.auto,
    datasets: DatasetsArg = None,
    replicates: ReplicatesArg = True,
    retrieval: RetrievalArg = False,
) -> None:
    """Agreement diagnostics: cross-dataset pairs with their baselines, retrieval,
    replicate agreement; tables as Parquet and CSV.

    Two profiles: ``perturbridge`` (our definitions, any store) and ``published`` (the
    published analysis exactly: Tables 4-8 and 10, with --retrieval Table 9; STORE is a
    release tree or a store with imported release datasets).

    Examples:

        perturbridge agreement compendium --out agreement --n-boot 2000

        perturbridge agreement release/ --profile published --out published
    """
    opts, changed = ours.keywords(), ours.changed()
    if profile == ProfileOption.published:
        _published_agreement(
            store,
            out,
            changed=changed,
            weighting=weighting.value,
            datasets=_split(datasets),
            n_boot=opts["n_boot"],
            replicates=replicates,
            retrieval=retrieval,
            progress=progress,
        )  # fmt: skip
        return
    if weighting != WeightingOption.auto or retrieval:
        fail("--weighting and --retrieval belong to --profile published")
    from ..agreement import run_agreement
    from ..agreement.options import AgreementOptions

    try:
        options = AgreementOptions(**opts, replicates=replicates, datasets=_split(datasets))
        res = run_agreement(store, options, out=out, progress=progress)
    except user_errors() as err:
        fail(err)
    console.print(agreement_table(res))
    counts = res.info.get("counts", {})
    console.print(
        f"{counts.get('pairs', 0):,} matched pairs, {counts.get('retrieval_queries', 0):,} "
        f"retrieval queries, {counts.get('replicate_conditions', 0):,} conditions with "
        f"replicates; wrote {out}"
    )


def _published_table(res: Any) -> Table:
    """Tables 4 and 5 of the published profile: observed, the published baseline (source
    centroid, sample-referenced) and Δ with its BCa interval, per dataset pair."""
    s = res.summary
    table = Table(
        title=f"published profile: observed vs source-centroid baseline ({res.weighting} weighting)"
    )
    for col in ("datasets", "metric", "observed", "baseline", "Δ [95% CI]", "compounds"):
        table.add_column(col, no_wrap=col in ("datasets", "metric"))
    if s.empty:
        return table
    s = s[s["weighting"] == res.weighting]
    rows = {
        "DEG Spearman (Table 4)": (
            "w4_observed_deg_lfc_spearman_sym_p05",
            "w4_source_centroid_deg_lfc_spearman_pair_p05",
            "w4_delta_vs_source_centroid_deg_lfc_spearman_p05",
        ),
        "direction (Table 5)": (
            "observed_direction_agreement_p05",
            "baseline_pair_direction_agreement_p05",
            "delta_vs_baseline_pair_direction_agreement_p05",
        ),
    }
    for (a, b), grp in s.groupby(["dataset_a", "dataset_b"], sort=False):
        by = grp.set_index("metric")
        for label, (obs, base, delta) in rows.items():
            if not {obs, base, delta} <= set(by.index):
                continue
            d = by.loc[delta]
            table.add_row(
                f"{a} / {b}",
                label,
                f"{by.loc[obs, 'mean']:.3f}",
                f"{by.loc[base, 'mean']:.3f}",
                f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                str(int(d["n_compounds"])),
            )
    return table


def _published_options(
    changed: list[str],
    *,
    progress: bool = True,
    weighting: str,
    datasets: list[str] | None,
    n_boot: int,
    replicates: bool,
    retrieval: bool,
) -> Any:
    """The options of a published-profile run; options of our profile are refused (the
    published definitions are fixed, they would be silently ignored)."""
    from ..agreement.published import PublishedOptions

    if changed:
        fail(
            f"{', '.join(changed)}: not options of --profile published, whose definitions "
            "are fixed (docs/agreement.md); use them with --profile perturbridge"
        )
    return PublishedOptions(
        datasets=None if datasets is None else tuple(datasets),
        weighting=weighting,
        n_boot=n_boot,
        replicates=replicates,
        retrieval=retrieval,
        progress=progress,
    )


def _published_agreement(
    source: Path,
    out: Path,
    *,
    changed: list[str],
    weighting: str,
    datasets: list[str] | None,
    n_boot: int,
    replicates: bool,
    retrieval: bool,
    progress: bool,
) -> Any:
    from ..agreement.published import run_published, write_published

    opts = _published_options(
        changed, weighting=weighting, datasets=datasets, n_boot=n_boot,
        replicates=replicates, retrieval=retrieval, progress=progress,
    )  # fmt: skip
    try:
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"--out {out} is a file; give a folder")
        res = run_published(source, options=opts)
        write_published(res, out)
    except user_errors() as err:
        fail(err)
    console.print(_published_table(res))
    skipped = res.info.get("skipped_datasets") or {}
    for name, why in skipped.items():
        err_console.print(f"[yellow]not included:[/] {name}: {why}", markup=True, highlight=False)
    console.print(
        f"{len(res.pairs):,} matched condition pairs ({res.weighting} weighting: "
        f"{res.info.get('weighting_note', '')}), {len(res.replicate_conditions):,} replicate "
        f"conditions; wrote {out}"
    )
    return res


def _published_report(
    source: Path,
    out: Path,
    *,
    changed: list[str],
    figures: Path | None,
    weighting: str,
    datasets: list[str] | None,
    n_boot: int,
    retrieval: bool,
) -> None:
    from ..agreement.published import run_published
    from ..report import write_published_report

    opts = _published_options(
        changed, weighting=weighting, datasets=datasets, n_boot=n_boot,
        replicates=True, retrieval=retrieval,
    )  # fmt: skip
    try:
        res = run_published(source, options=opts)
        path = write_published_report(res, out, figures_dir=figures)
    except user_errors(IsADirectoryError) as err:
        fail(err)
    console.print(f"wrote {path} (published profile, {res.weighting} weighting)")


@with_our_options
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
    evaluation: Annotated[
        Path | None,
        typer.Option(
            "--evaluation", help="An evaluation folder (perturbridge evaluate): the models section."
        ),
    ] = None,
    ours: OurOptions = OurOptions({}),
    profile: ProfileArg = ProfileOption.perturbridge,
    weighting: WeightingArg = WeightingOption.auto,
    datasets: DatasetsArg = None,
    retrieval: RetrievalArg = False,
) -> None:
    """An HTML report of a store: datasets, coverage and the agreement diagnostics
    (read from --agreement, or computed with the options given).

    An agreement folder of the published profile, or --profile published, gives the
    report in the layout of the published Tables 4-8. --evaluation adds the models
    section; a store with a current search index gets a search section.

    Examples:

        perturbridge report compendium --out report.html --agreement agreement

        perturbridge report release/ --profile published --out published.html
    """
    opts, changed = ours.keywords(), ours.changed()
    if agreement is not None and profile == ProfileOption.published:
        from ..report.html import _profile_of

        if _profile_of(agreement) != "published":
            fail(
                f"--agreement {agreement} holds the perturbridge profile; run "
                "`perturbridge agreement … --profile published` for a published folder"
            )
    if profile == ProfileOption.published and agreement is None:
        _published_report(
            store, out, changed=changed, figures=figures, weighting=weighting.value,
            datasets=_split(datasets), n_boot=opts["n_boot"], retrieval=retrieval,
        )  # fmt: skip
        return
    try:
        from ..report import write_report

        path = write_report(
            store, out, agreement_dir=agreement, options=opts, figures_dir=figures,
            evaluation_dir=evaluation,
        )  # fmt: skip
    except user_errors(ImportError) as err:
        fail(err)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the agreement commands to the ``perturbridge`` app."""
    app.command("agreement")(agreement_cmd)
    app.command("report")(report_cmd)
