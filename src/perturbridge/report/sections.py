"""The sections of the agreement report (perturbridge profile), each a piece of HTML."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import figures as F
from .inputs import _Agreement
from .tables import (
    _baselines,
    _Cell,
    _ci,
    _close,
    _e,
    _empty,
    _Fig,
    _figure_html,
    _frame_table,
    _help_list,
    _isnan,
    _labelled,
    _metric_table,
    _metrics,
    _num,
    _overall,
    _p,
    _pct,
    _table,
    _undefined_note,
)

__all__ = ["BASELINE_HELP", "FIGURE_HELP", "METRIC_HELP", "PUBLISHED_CONTEXT"]

#: What the published analysis of the original release found, as context for readers.
PUBLISHED_CONTEXT = (
    "The analysis published with the original release of these harmonised effects found "
    "that matched conditions of the same compound (same cell context and time) from "
    "different datasets agree weakly on fine-grained logFC rankings and magnitudes, often "
    "below a same-context, different-compound baseline, while the direction of the logFC "
    "is stable and usually agrees better than the baseline; within a dataset, replicates "
    "agree well on direction. This report uses the perturbridge profile: its baselines are "
    "cross-dataset (another compound's signature of one dataset compared with the matched "
    "signature of the other), not the published one (each sample against the mean of the "
    "other compounds of its own dataset), so its numbers do not reproduce the published "
    "tables; `perturbridge agreement … --profile published` does. A Δ whose 95 % interval "
    "lies above 0 means that the same compound agrees better than the baseline; an interval "
    "that covers 0 means the data cannot tell the compound's own signal from the shared "
    "response."
)

METRIC_HELP: dict[str, str] = {
    "deg_spearman": (
        "Spearman correlation of the two logFC profiles over the genes called DE on one "
        "side (ranks within those genes), averaged over the two sides. Do the responding "
        "genes respond in the same order of strength on the other side? 1: same order, "
        "0: unrelated, −1: reversed."
    ),
    "direction": (
        "Of the genes called DE on one side, the fraction that move the same way (same "
        "sign of logFC) on the other side, averaged over the two sides. Unrelated "
        "signatures give about 0.5; 1 means every DE gene moves the same way."
    ),
    "spearman": (
        "Spearman correlation of the two logFC profiles over all genes measured on both "
        "sides. Most genes barely move, so values are usually small even for good matches."
    ),
    "top50": (
        "Of the 50 most up- and 50 most down-regulated genes of each side, the fraction "
        "found in the same list (up with up, down with down) on the other side. Unrelated "
        "signatures over G genes share about 50/G."
    ),
    "top100": "As top-50, with the 100 most up- and down-regulated genes.",
    "top200": "As top-50, with the 200 most up- and down-regulated genes.",
    "retrieval_norm_rank": (
        "Each signature of the query dataset is scored against every signature of the "
        "target dataset in its context and time; the normalised rank of the best hit of "
        "the same compound (best rank / (K + 1)). Lower is better; the random floor is "
        "1 / (N + 1) for N positives among K candidates."
    ),
    "retrieval_recall1": (
        "Fraction of queries whose top-scoring candidate is the same compound. Random floor: N / K."
    ),
    "retrieval_auroc": (
        "Area under the ROC curve of the same compound against the other candidates. "
        "Random floor: 0.5."
    ),
}
BASELINE_HELP: dict[str, str] = {
    "cross_centroid_a": (
        "cross-dataset centroid: the mean signature of the other compounds of dataset A at "
        "the same context, dose and time, compared with B's matched signature (with both "
        "DE masks). A compound that beats it carries signal of its own, beyond the response "
        "dataset A shows to any treatment. (Not the published baseline, which compares each "
        "sample with the centroid of its own dataset: see the published profile.)"
    ),
    "centroid": (
        "the mean signature of the other compounds of the dataset at the same context, "
        "dose and time."
    ),
    "cross_centroid_b": (
        "cross-dataset centroid the other way round: the mean signature of the other "
        "compounds of dataset B, compared with A's signature: how well B's generic response "
        "alone would match."
    ),
    "peer_mean": (
        "cross-dataset peers: each other compound of dataset A in the stratum compared on "
        "its own with B's matched signature; the table shows the mean over at most 50 peers. "
        "Above the peers: the match is specific to this compound."
    ),
    "random_floor": "the exact expectation for a random ordering of the candidates.",
}
BASELINE_HELP["peers"] = BASELINE_HELP["peer_mean"]

FIGURE_HELP: dict[str, str] = {
    "cross_agreement": (
        "One panel per metric, one row per dataset pair. The black dot is the observed "
        "agreement of matched conditions (nested mean over strata and compounds) with its "
        "95 % compound-clustered bootstrap interval; the coloured markers are the "
        "baselines. A dot clearly to the right of the baselines (to the left for the "
        "normalised rank) means the same compound agrees better than other compounds do."
    ),
    "cross_heatmap": (
        "Left: observed agreement between each pair of datasets (symmetric); the outlined "
        "diagonal is replicate agreement within the dataset, the ceiling that cross-dataset "
        "agreement can hope to reach. Right: Δ = observed − baseline, rows the source "
        "dataset whose signature the baseline replaces; red means better than the "
        "baseline, blue worse, grey cells have no data."
    ),
    "retrieval": (
        "One row per query → target dataset (↔: queries of both directions pooled). The "
        "black dot is the observed mean with its 95 % interval, the grey cross the exact "
        "random floor. For the normalised rank lower is better; for recall@1 and AUROC "
        "higher is better."
    ),
    "replicate_agreement": (
        "Agreement of replicate signatures of the same condition within each dataset, "
        "with its 95 % interval, against the centroid and peer baselines built from the "
        "other compounds' replicates."
    ),
    "dose_sensitivity": (
        "Observed agreement (solid) and the source-centroid baseline (dashed) per dataset "
        "pair as the largest dose ratio allowed between matched conditions widens from "
        "exact to 10×. More pairs enter at looser tolerances; a falling line means dose "
        "mismatch costs agreement."
    ),
}

# --------------------------------------------------------------------------- sections


def _section_summary(comp: Mapping[str, Any]) -> str:
    s = comp["summary"]
    counts = dict(s["counts"])
    for mode, n in sorted(s.get("contrasts", {}).items()):
        counts[f"contrasts ({mode} mode)"] = n
    out = ['<section id="compendium"><h2>1. Compendium summary</h2>']
    assays = ", ".join(str(a) for a in s.get("assays", []) if str(a)) or "–"
    out.append(
        f'<p class="meta">Store <code>{_e(s.get("path", ""))}</code>, build key '
        f"<code>{_e(str(s.get('build_key') or '–')[:16])}</code>, built with perturbridge "
        f"{_e(s.get('version') or '–')}. Assays: {_e(assays)}.</p>"
    )
    out.append(
        _table(
            ["quantity", "count"],
            [[k.replace("_", " "), int(v)] for k, v in counts.items()],
            caption="Counts",
        )
    )
    datasets = s.get("datasets")
    if isinstance(datasets, pd.DataFrame) and not datasets.empty:
        out.append(_frame_table(datasets, caption="Datasets"))
    else:
        out.append(_empty("The store has no datasets."))
    ledger = s.get("ledger")
    out.append("<h3>Ledger totals</h3>")
    out.append(
        _p(
            "Every input row, cell and gene is kept or dropped with a reason; these "
            "are the totals by stage, status and reason."
        )
    )
    if isinstance(ledger, pd.DataFrame) and not ledger.empty:
        out.append(_frame_table(ledger, max_rows=60))
        return _close(out)
    return _close(out, _empty("The ledger of this store is empty (nothing was dropped or noted)."))


def _section_coverage(comp: Mapping[str, Any]) -> str:
    out = ['<section id="coverage"><h2>2. Identifier coverage</h2>']
    out.append(
        _p(
            "Cross-dataset matching needs the same compound identity on both sides: the parent "
            "InChIKey (salts and charges stripped) when resolved, else the InChIKey. A condition "
            "without either keeps an opaque dataset-local id and cannot match another dataset."
        )
    )
    cov = comp["coverage"]
    if cov.empty:
        out.append(_empty("The store has no conditions."))
    else:
        rows = []
        for r in cov.to_dict("records"):
            n = r["n_conditions"]
            rows.append(
                [
                    r["dataset"],
                    int(n),
                    *(
                        _Cell(_pct(r[c], n), "num")
                        for c in ("n_dosed", "n_inchikey", "n_parent_inchikey", "n_pubchem_cid")
                        if c in r
                    ),
                    *([int(r["n_compounds"])] if "n_compounds" in r else []),
                ]
            )
        header = ["dataset", "conditions"]
        labels = {
            "n_dosed": "dose > 0",
            "n_inchikey": "with InChIKey",
            "n_parent_inchikey": "with parent InChIKey",
            "n_pubchem_cid": "with PubChem CID",
        }
        header += [labels[c] for c in labels if c in cov.columns]
        if "n_compounds" in cov.columns:
            header.append("distinct compounds")
        out.append(_table(header, rows, caption="Conditions by dataset"))
    shared = comp["shared"]
    if isinstance(shared, pd.DataFrame) and not shared.empty:
        out.append(
            _table(
                ["dataset A", "dataset B", "shared compounds", "shared compound × context × time"],
                shared.itertuples(index=False, name=None),
                caption="Compounds two datasets have in common (the candidates for matching)",
            )
        )
    else:
        out.append(_empty("No two datasets share a compound identity."))
    for key, what in (
        ("compound_status", "Compound identifier status of treated samples"),
        ("cell_status", "Cell identifier status of all samples"),
    ):
        table = comp[key]
        if isinstance(table, pd.DataFrame) and not table.empty:
            out.append(_frame_table(table, caption=what))
    if all(
        not isinstance(comp[k], pd.DataFrame) or comp[k].empty
        for k in ("compound_status", "cell_status")
    ):
        out.append(
            _empty(
                "The store has no sample-level identifier status (for example, a "
                "store imported from release DE files has no samples)."
            )
        )
    return _close(out)


def _pairs_overview(pairs: pd.DataFrame, strata: pd.DataFrame) -> str:
    if pairs.empty:
        return ""
    rows = []
    for (a, b), grp in pairs.groupby(["dataset_a", "dataset_b"], sort=True):
        dl = grp["dlog10_dose"].abs() if "dlog10_dose" in grp else pd.Series(dtype=float)
        line: list[Any] = [
            a,
            b,
            len(grp),
            grp["compound"].nunique(),
            grp["cell_context"].nunique() if "cell_context" in grp else None,
            _Cell(_pct(int((dl <= 1e-6).sum()), len(grp)), "num"),
            float(dl.median()) if len(dl) else None,
        ]
        if not strata.empty and {"dataset_a", "dataset_b", "kept"} <= set(strata.columns):
            st = strata[(strata["dataset_a"] == a) & (strata["dataset_b"] == b)]
            line.append(f"{int(st['kept'].astype(bool).sum()):,} of {len(st):,}")
        else:
            line.append(None)
        rows.append(line)
    return _table(
        [
            "dataset A",
            "dataset B",
            "matched pairs",
            "compounds",
            "contexts",
            "exact dose",
            "median |Δ log10 dose|",
            "strata kept",
        ],
        rows,
        caption="Matched condition pairs (same compound, context and time; mutual-nearest dose)",
    )


def _by_context(rows: pd.DataFrame, metrics: Sequence[str], *, label: str) -> str:
    ctx = rows[rows["cell_context"].astype(str) != "*"] if "cell_context" in rows else rows[:0]
    if ctx.empty:
        return ""
    ctx = _labelled(ctx)
    parts = ["<details><summary>By cell context (one table per metric)</summary>"]
    for metric in metrics:
        sub = ctx[ctx["metric"] == metric]
        if F.defined_metrics(sub):
            parts.append(_metric_table(sub, metric, label=label, extra=("cell_context",)))
    parts.append("</details>")
    return "".join(parts)


def _section_cross(ag: _Agreement, figs: Mapping[str, _Fig], options: Mapping[str, Any]) -> str:
    out = ['<section id="cross"><h2>3. Cross-dataset agreement</h2>']
    out.append(
        _p(
            "Conditions of two datasets are matched when they share the compound identity, the "
            "cell context and the time; doses are paired as mutual nearest neighbours in log10 "
            "dose. For each matched pair the observed value of a metric is compared with "
            "baselines that replace the source signature by something that is not the compound "
            "(keeping its DE genes, so only the logFC values differ). Summaries are nested means "
            "(over strata, of the mean over compounds) with 95 % compound-clustered BCa "
            "bootstrap intervals; Δ = observed − baseline, in bold green when its interval lies "
            "above 0 and red when below."
        )
    )
    out.append(f'<div class="note"><b>Context.</b> {_e(PUBLISHED_CONTEXT)}</div>')
    rows = _overall(ag.cross_summary)
    pair_rows = rows[~rows["metric"].isin(F.RETRIEVAL_METRICS)] if not rows.empty else rows
    metrics = _metrics(pair_rows)
    out.append("<h3>Metrics</h3>")
    out.append(
        _help_list(
            (F.metric_label(m), METRIC_HELP.get(m, ""))
            for m in (metrics or [m for m in F.METRIC_LABELS if not m.startswith("retr")])
        )
    )
    out.append("<h3>Baselines</h3>")
    bases = _baselines(pair_rows) or ["cross_centroid_a", "cross_centroid_b", "peer_mean"]
    out.append(_help_list((F.baseline_label(b), BASELINE_HELP.get(b, "")) for b in bases))
    out.append("<h3>Matched pairs</h3>")
    if ag.pairs.empty and pair_rows.empty:
        mc = options.get("min_compounds", 10)
        out.append(
            _empty(
                "No dataset pairs had matched conditions: no two datasets share a compound, "
                f"context and time with at least {mc} matched compounds in a stratum "
                "(option min_compounds). There is nothing to compare across datasets."
            )
        )
        return _close(out)
    out.append(_pairs_overview(ag.pairs, ag.strata) or _empty("The pairs table is empty."))
    out.append("<h3>Agreement by dataset pair (all contexts)</h3>")
    if pair_rows.empty:
        out.append(_empty("No summaries: the cross_summary table has no pair-metric rows."))
    else:
        labelled = _labelled(pair_rows)
        for metric in F.defined_metrics(pair_rows):
            out.append(_metric_table(labelled, metric, label="dataset pair (A vs B)"))
        out.append(_undefined_note(pair_rows))
        out.append(_figure_html(figs.get("cross_agreement"), FIGURE_HELP["cross_agreement"]))
        heat = [figs[k] for k in figs if k.startswith("cross_heatmap_")]
        if heat:
            out.append("<h3>Dataset × dataset</h3>")
            out.append(
                f'<p class="meta"><b>How to read:</b> {_e(FIGURE_HELP["cross_heatmap"])}</p>'
            )
            out.append('<div class="grid">')
            for fig in heat:
                metric = fig.name.removeprefix("cross_heatmap_")
                out.append(_figure_html(fig, F.metric_label(metric), how=False))
            out.append("</div>")
        out.append(
            _by_context(
                ag.cross_summary[~ag.cross_summary["metric"].isin(F.RETRIEVAL_METRICS)],
                metrics,
                label="dataset pair (A vs B)",
            )
        )
    return _close(out)


def _section_retrieval(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="retrieval"><h2>4. Retrieval against the random floor</h2>']
    out.append(
        _p(
            "Can the same compound be found in the other dataset? Each signature of the query "
            "dataset is scored against every signature of the target dataset in its context and "
            "time (K candidates, N of them the same compound). Every query has its own exact "
            "random floor; the table puts observed and floor side by side."
        )
    )
    out.append(_help_list((F.metric_label(m), METRIC_HELP[m]) for m in F.RETRIEVAL_METRICS))
    summary = F.retrieval_summary(ag.cross_summary, ag.retrieval)
    if summary.empty:
        return _close(out, _empty("No retrieval queries: no dataset pair had matched conditions."))
    labelled = _labelled(summary, directed=True)
    measures = _metrics(labelled)
    header = ["query → target"]
    groups: list[tuple[str, int]] = [("", 1)]
    for m in measures:
        header += ["observed [95% CI]", "floor"]
        groups.append((F.metric_label(m), 2))
    header += ["queries", "compounds"]
    groups.append(("counts", 2))
    body = []
    for lab, grp in labelled.groupby("_label", sort=False):
        line: list[Any] = [lab]
        for m in measures:
            r = grp[grp["metric"] == m]
            if r.empty:
                line += [None, None]
                continue
            x = r.iloc[0]
            line += [
                _Cell(_ci(x["observed"], x.get("observed_low"), x.get("observed_high")), "num"),
                x["baseline_value"],
            ]
        first = grp.iloc[0]
        line += [
            None if _isnan(first.get("n_pairs")) else int(first["n_pairs"]),
            None if _isnan(first.get("n_compounds")) else int(first["n_compounds"]),
        ]
        body.append(line)
    out.append(
        _table(
            header,
            body,
            groups=groups,
            caption="Retrieval of the same compound (↔: both directions pooled)",
        )
    )
    out.append(_figure_html(figs.get("retrieval"), FIGURE_HELP["retrieval"]))
    return _close(out)


def _section_replicate(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="replicate"><h2>5. Replicate agreement within datasets</h2>']
    out.append(
        _p(
            "Separate-mode effects give one signature per replicate contrast of a condition. "
            "The observed value of a condition is the mean of the metric over its replicate "
            "pairs; baselines are built from the other compounds' replicate signatures at the "
            "same context, dose and time. Replicate agreement is the ceiling for cross-dataset "
            "agreement: two datasets cannot agree better than each agrees with itself."
        )
    )
    rows = _overall(ag.replicate_summary)
    if rows.empty:
        return _close(out, _empty("Replicate agreement was not computed (no replicate_summary)."))
    has = rows
    if "n_conditions" in rows.columns:
        has = rows[rows["n_conditions"].fillna(0) > 0]
    has = has[has["metric"] != "*"] if "metric" in has.columns else has
    without = rows[~rows["dataset"].isin(set(has["dataset"]))].drop_duplicates("dataset")
    if has.empty:
        out.append(
            _empty(
                "No dataset has separate-mode (per-replicate) effects with two or "
                "more replicates, so replicate agreement could not be computed."
            )
        )
    else:
        labelled = _labelled(has)
        for metric in F.defined_metrics(labelled):
            out.append(_metric_table(labelled, metric, label="dataset"))
        out.append(_undefined_note(labelled))
        out.append(
            _figure_html(figs.get("replicate_agreement"), FIGURE_HELP["replicate_agreement"])
        )
    if not without.empty:
        reason = (
            without["reason"] if "reason" in without.columns else pd.Series("", index=without.index)
        )
        out.append(
            _table(
                ["dataset", "reason"],
                zip(without["dataset"], reason.fillna(""), strict=True),
                caption="Datasets without replicate agreement",
            )
        )
    out.append(
        _by_context(
            ag.replicate_summary[ag.replicate_summary["metric"] != "*"]
            if "metric" in ag.replicate_summary
            else ag.replicate_summary,
            _metrics(has),
            label="dataset",
        )
    )
    return _close(out)


def _section_dose(ag: _Agreement, figs: Mapping[str, _Fig]) -> str:
    out = ['<section id="dose"><h2>6. Dose sensitivity</h2>']
    dose = ag.dose_sensitivity
    if dose is None or dose.empty:
        out.append(
            _empty(
                "Dose sensitivity was not computed (run the agreement with "
                "--dose-sensitivity), or no pair had matches at any tolerance."
            )
        )
        return _close(out)
    out.append(
        _p(
            "The matching and the summaries recomputed with the largest allowed dose ratio "
            "between matched conditions exact, 2×, 3× and 10× (no intervals)."
        )
    )
    out.append(_dose_table(dose))
    out.append(_figure_html(figs.get("dose_sensitivity"), FIGURE_HELP["dose_sensitivity"]))
    return _close(out)


def _dose_table(dose: pd.DataFrame) -> str:
    """One row per dataset pair × metric; per threshold: observed, Δ and pairs."""
    tcol = F.threshold_column(dose)
    if tcol is None:
        return _frame_table(dose)
    table = dose
    note = ""
    if "baseline" in table.columns and "baseline_value" in table.columns:
        bases = _baselines(table)
        if bases:
            table = table[table["baseline"] == bases[0]]
            note = f" Δ against the {F.baseline_label(bases[0]).lower()}."
    table = table[table["metric"].isin(F.defined_metrics(table))]
    thresholds = sorted(pd.unique(table[tcol].astype(float)))
    header = ["dataset pair", "metric"]
    groups: list[tuple[str, int]] = [("", 2)]
    for t in thresholds:
        header += ["observed", "Δ", "pairs"]
        groups.append((F.threshold_label(t), 3))
    body = []
    labelled = _labelled(table)
    for (lab, metric), grp in labelled.groupby(["_label", "metric"], sort=False):
        line: list[Any] = [lab, F.metric_label(str(metric))]
        for t in thresholds:
            r = grp[np.isclose(grp[tcol].astype(float), t)]
            if r.empty:
                line += [None, None, None]
                continue
            x = r.iloc[0]
            line += [
                x["observed"],
                _Cell(_num(x.get("delta"), signed=True), "num"),
                None if _isnan(x.get("n_pairs")) else int(x["n_pairs"]),
            ]
        body.append(line)
    caption = "Observed agreement and Δ by the largest dose ratio allowed." + note
    return _table(header, body, groups=groups, caption=caption)


def _section_excluded(ag: _Agreement) -> str:
    out = ['<section id="excluded"><h2>7. Excluded conditions</h2>']
    out.append(
        _p(
            "What was not used and why: conditions without a compound identity, vehicles and "
            "other conditions without a positive dose, conditions without a partner in the "
            "other dataset, and strata with too few compounds. Counts by dataset and reason."
        )
    )
    ex = ag.excluded
    if ex.empty:
        out.append(_empty("No conditions were excluded."))
    else:
        sort = [c for c in ("dataset", "other_dataset", "status", "reason") if c in ex.columns]
        out.append(_frame_table(ex.sort_values(sort, kind="stable") if sort else ex))
    return _close(out)


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, (list, tuple)):
        yield prefix, ", ".join(map(str, value)) if value else "–"
    else:
        yield prefix, value


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _section_run(ag: _Agreement, options: Mapping[str, Any]) -> str:
    out = ['<section id="run"><h2>8. Run parameters</h2>']
    if options:
        rows = [[k, _text(v)] for k, v in _flatten("", dict(options))]
        out.append(_table(["option", "value"], rows, caption="Options of the agreement run"))
    else:
        out.append(_empty("The agreement options were not recorded."))
    info = {k: v for k, v in ag.info.items() if k != "options"}
    if info:
        rows = [[k, _text(v)] for k, v in _flatten("", info)]
        out.append(_table(["field", "value"], rows, caption="agreement.json"))
    return _close(out)


def _build_key_warning(ag: _Agreement, summary: Mapping[str, Any]) -> str:
    theirs, ours = ag.info.get("build_key"), summary.get("build_key")
    if theirs and ours and str(theirs) != str(ours):
        return (
            '<div class="warn">The agreement tables were computed on store build '
            f"<code>{_e(str(theirs)[:16])}</code>, but this store is build "
            f"<code>{_e(str(ours)[:16])}</code>: the store changed since the agreement run; "
            "rerun <code>perturbridge agreement</code>.</div>"
        )
    return ""


_SECTIONS = (
    ("compendium", "Compendium summary"),
    ("coverage", "Identifier coverage"),
    ("cross", "Cross-dataset agreement"),
    ("retrieval", "Retrieval against the random floor"),
    ("replicate", "Replicate agreement"),
    ("dose", "Dose sensitivity"),
    ("excluded", "Excluded conditions"),
    ("run", "Run parameters"),
)
