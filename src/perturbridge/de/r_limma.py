"""Run the same limma-trend analysis through R limma (optional; needs ``Rscript``).

perturbridge never needs R. This module exists for the tests (R is the oracle every
ported statistic is checked against), the benchmarks, and users who must cite R: it
writes each context's data and design to a folder, runs ``r/limma.R`` and reads
the results back in the Effects orientation.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd

from ..progress import track
from ..schema import ReplicateMode, validate_samples
from ._ebayes import EBayesOptions
from ._effects import (
    STDEV_SCALED,
    DEResult,
    contrast_meta,
    dense_rows,
    drop_low_expression,
    drop_no_df,
    effects_of,
    plan_fits,
)
from ._linear import design_structure
from ._rstats import p_adjust_bh
from .design import STAGE, ContextDesign
from .options import DEOptions
from .quality import quality_table

__all__ = ["R_LAYERS", "RResult", "limma_r", "r_limma_status", "run_r_limma"]

#: Layers as R's topTable names them, plus ``fit$stdev.unscaled`` and stdev.scaled
#: (``fit$stdev.unscaled * sqrt(fit$s2.post)``).
R_LAYERS: tuple[str, ...] = (
    "logFC", "t", "P.Value", "adj.P.Val", "CI.L", "CI.R", "AveExpr", "B", "stdev.unscaled",
    "stdev.scaled",
)  # fmt: skip


@dataclass(frozen=True)
class RResult:
    """R's layers (contrasts × genes, rows in ``design.treated`` order) and timings (s)."""

    layers: dict[str, np.ndarray]
    timings: dict[str, float]
    extra: dict[str, np.ndarray]


def r_limma_status() -> str | None:
    """``None`` when ``Rscript`` with limma, edgeR and statmod works, else why not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found (Debian: r-base-core r-bioc-limma r-bioc-edger r-cran-statmod)"
    proc = subprocess.run(
        ["Rscript", "-e", "suppressMessages({library(limma); library(edgeR); library(statmod)})"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"R packages limma/edgeR/statmod missing: {proc.stderr.strip()[:200]}"
    return None


def write_r_inputs(x: np.ndarray, design: ContextDesign, workdir: Path) -> None:
    """Write one context (``x``: its samples × genes) in the layout the R script reads."""
    workdir.mkdir(parents=True, exist_ok=True)
    np.savetxt(workdir / "expr.txt", np.asarray(x, dtype=float).T, fmt="%.17g")
    with open(workdir / "samples.tsv", "w") as fh:
        fh.write("condition\tplate\n")
        fh.writelines(f"{c}\t{p}\n" for c, p in zip(design.condition, design.plates, strict=True))
    (workdir / "levels.txt").write_text("\n".join(design.levels) + "\n")
    (workdir / "plates.txt").write_text("\n".join(design.plate_levels) + "\n")
    with open(workdir / "contrasts.tsv", "w") as fh:
        fh.write("treated\tcontrol\n")
        fh.writelines(f"{t}\t{c}\n" for t, c in zip(design.treated, design.control, strict=True))


def run_r_limma(
    x: np.ndarray,
    design: ContextDesign,
    *,
    workdir: Path,
    how: Literal["all", "per_contrast"] = "all",
    method: Literal["trend", "voom"] = "trend",
    weights: bool = False,
    fit_rows: np.ndarray | None = None,
    quality_weights: bool | Literal["plate"] = False,
) -> RResult:
    """R limma on one context, the same analysis as perturbridge's engines.

    ``method="trend"``: ``lmFit`` → ``contrasts.fit`` → ``eBayes(trend=TRUE,
    robust=TRUE)`` → ``topTable``. ``method="voom"`` (``x`` are counts): edgeR
    ``filterByExpr(design)`` → ``calcNormFactors`` (TMM) → ``voom`` → ``lmFit`` →
    ``contrasts.fit`` → ``eBayes(robust=TRUE)`` → ``topTable``; genes removed by the
    filter are NaN in the layers, and ``extra`` holds ``keep``, ``norm_factors`` and,
    with ``weights=True``, the voom ``weights`` (samples × kept genes).

    Parameters
    ----------
    x
        The context's samples × genes log expression (``samples.X[design.rows]``).
    design
        From :func:`~perturbridge.de.limma.plan_contexts`.
    workdir
        Folder for the exchange files.
    how
        ``"all"``: all contrasts in one ``contrasts.fit`` + ``eBayes`` (R at its best);
        ``"per_contrast"``: one call per contrast (how the published pipeline ran).
    quality_weights
        Sample quality weights: ``arrayWeights(y, design)`` then ``lmFit(weights =)``
        (trend; ``"plate"``: ``arrayWeights(y, model.matrix(~0 + plate))``) or
        ``voomWithQualityWeights`` (voom); ``extra["sample_weights"]``.
    fit_rows
        voom only: fit only these genes (0-based positions among the genes kept by
        the filter), for timing R on a subset; the other genes are NaN.
    """
    why = r_limma_status()
    if why is not None:
        raise RuntimeError(why)
    write_r_inputs(x, design, workdir)
    rows_file = workdir / "fit_rows.txt"
    rows_file.unlink(missing_ok=True)
    for stale in ("quality_weights", "R_sample_weights.txt"):
        (workdir / stale).unlink(missing_ok=True)
    if quality_weights:
        (workdir / "quality_weights").write_text("plate" if quality_weights == "plate" else "")
    if fit_rows is not None:
        np.savetxt(rows_file, np.asarray(fit_rows, dtype=int) + 1, fmt="%d")
    script = resources.files("perturbridge.de").joinpath("r/limma.R")
    args = [str(workdir), how, method] + (["weights"] if weights else [])
    with resources.as_file(script) as path:
        proc = subprocess.run(
            ["Rscript", str(path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"R limma failed:\n{proc.stderr[-2000:]}")
    layers = {name: np.loadtxt(workdir / f"R_{name}.txt", ndmin=2).T for name in R_LAYERS}
    extra: dict[str, np.ndarray] = {}
    if quality_weights:
        extra["sample_weights"] = np.loadtxt(workdir / "R_sample_weights.txt", ndmin=1)
    for name in ("df.prior", "s2.prior"):
        path = workdir / f"R_{name}.txt"
        if how == "all" and path.exists():
            extra[name.replace(".", "_")] = np.loadtxt(path, ndmin=1)
    if method == "voom":
        keep = np.loadtxt(workdir / "R_keep.txt", ndmin=1).astype(bool)
        extra["keep"] = keep
        extra["norm_factors"] = np.loadtxt(workdir / "R_norm_factors.txt", ndmin=1)
        if weights:
            extra["weights"] = np.loadtxt(workdir / "R_weights.txt", ndmin=2).T
        cols = np.flatnonzero(keep)
        if fit_rows is not None:
            cols = cols[np.asarray(fit_rows, dtype=int)]
        for name, m in layers.items():
            full = np.full((m.shape[0], keep.size), np.nan)
            full[:, cols] = m
            layers[name] = full
    timings = {}
    for line in (workdir / "timings.tsv").read_text().splitlines()[1:]:
        step, sec = line.split("\t")
        timings[step] = float(sec)
    return RResult(layers, timings, extra)


def limma_r(
    samples: ad.AnnData,
    *,
    method: Literal["trend", "voom"],
    mode: ReplicateMode = "group",
    control_keys: Sequence[str] | None = None,
    options: DEOptions | None = None,
    progress: bool = False,
    workdir: Path | None = None,
) -> DEResult:
    """The same analysis as :func:`~perturbridge.de.limma_trend` /
    :func:`~perturbridge.de.voom.limma_voom`, computed by R limma (and edgeR for voom).

    For users who must cite R. Needs ``Rscript`` with limma, edgeR and statmod; each
    fit (dataset × context, or × control group) runs in its own R process on the
    samples our engines fit. ``adj.P.Value.across_all_contrasts`` is BH over R's
    p-values of the fit. ``mode`` and ``control_keys`` as for the other engines; of
    ``options`` (:class:`~perturbridge.de.DEOptions`) R uses ``orphan_vehicles``,
    ``fit_per_control_group``, ``stdev_scaled`` and ``quality_weights``, and limma's
    defaults for the rest.
    """
    opts = options or DEOptions()
    why = r_limma_status()
    if why is not None:
        raise RuntimeError(f"--engine r needs R: {why}")
    validate_samples(samples)
    kind = samples.uns["perturbridge"]["value_kind"]
    expected = "counts" if method == "voom" else "log_expression"
    if kind != expected:
        raise ValueError(f"limma-{method} needs {expected}, these Samples hold {kind!r}")
    designs, ledger = plan_fits(samples, mode=mode, control_keys=control_keys, options=opts)
    blocks = []
    tested: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for i, design in enumerate(
            track(designs, description=f"R limma-{method}", enabled=progress)
        ):
            st = design_structure(
                design.condition_codes,
                design.plate_codes,
                n_conditions=len(design.levels),
                n_plates=len(design.plate_levels),
            )
            df = design.rows.size - st.k - int(st.keep.sum())
            if df <= 0:
                drop_no_df(design, ledger)
                continue
            r = run_r_limma(
                dense_rows(samples.X, design.rows),
                design,
                workdir=Path(tmp) / f"ctx{i}",
                method=method,
                quality_weights=(
                    "plate"
                    if opts.quality_weights and opts.quality_design == "plate"
                    else opts.quality_weights
                ),
            )
            if method == "voom":
                drop_low_expression(ledger, samples.var_names, r.extra["keep"], design)
            p = r.layers["P.Value"]
            layers = {
                "logFC": r.layers["logFC"],
                "t": r.layers["t"],
                "P.Value": p,
                "adj.P.Value.within_one_contrast": r.layers["adj.P.Val"],
                "adj.P.Value.across_all_contrasts": p_adjust_bh(p.ravel()).reshape(p.shape),
                "CI.L": r.layers["CI.L"],
                "CI.R": r.layers["CI.R"],
                "AveExpr": r.layers["AveExpr"],
                "B": r.layers["B"],
                "stdev.unscaled": r.layers["stdev.unscaled"],
            }
            if opts.stdev_scaled:
                layers[STDEV_SCALED] = r.layers[STDEV_SCALED]
            meta = contrast_meta(
                samples.obs.iloc[design.rows],
                design,
                n_per_condition=st.n_per_condition,
                df_residual=df,
                n_plate_columns_not_estimable=int((~st.keep).sum()),
                mode=mode,
            )
            _r_priors(meta, r, design, trend=method == "trend", n_genes=samples.n_vars)
            if opts.quality_weights:
                meta.attrs["quality_weights"] = quality_table(
                    design,
                    samples.obs.iloc[design.rows],
                    r.extra["sample_weights"],
                    method="genebygene" if method == "voom" else "reml",
                    status="R",
                )
            ledger.keep(design.treated, stage=STAGE, detail=design.fit_id)
            blocks.append((meta, layers))
            tested.append(r.extra.get("keep", np.ones(samples.n_vars, dtype=bool)))
    params = {
        "mode": mode,
        "method": f"limma-{method}",
        "engine": "R",
        "robust": True,
        "trend": method == "trend",
        **({"quality_weights": True} if opts.quality_weights else {}),
    }
    # as our engine: Effects keep the genes tested in at least one fit
    union = np.logical_or.reduce(tested) if tested else np.ones(samples.n_vars, dtype=bool)
    blocks = [(m, {k: v[:, union] for k, v in lay.items()}) for m, lay in blocks]
    for m, _ in blocks:
        m.attrs["ebayes_genes"] = {k: v[union] for k, v in m.attrs["ebayes_genes"].items()}
    var = samples.var.iloc[np.flatnonzero(union)]
    effects = effects_of(blocks, samples, mode=mode, params=params, options=opts, var=var)
    return DEResult(effects, ledger)


def _r_priors(
    meta: pd.DataFrame, r: RResult, design: ContextDesign, *, trend: bool, n_genes: int
) -> None:
    """R's eBayes priors of one fit (``eBayes(robust = TRUE)``) in the block's attrs, in
    the form :func:`~perturbridge.de._effects.ebayes_record` gives them (the scalar
    ``df_prior`` of a robust fit: the largest per-gene value, that of the genes R did not
    find outlying)."""
    keep = r.extra.get("keep", np.ones(n_genes, dtype=bool))
    genes = {}
    for name in ("df_prior", "s2_prior"):
        full = np.full(n_genes, np.nan)
        full[keep] = r.extra[name]
        genes[name] = full
    ebo = EBayesOptions()
    rec: dict[str, Any] = {
        "fit_id": design.fit_id,
        "method": "eBayes",
        "trend": trend,
        "robust": True,
        "proportion": float(ebo.proportion),
        "stdev_coef_lim": [float(v) for v in ebo.stdev_coef_lim],
        "df_prior": float(np.max(r.extra["df_prior"])),
        "n_genes": int(keep.sum()),
        "winsor_tail_p": [float(v) for v in ebo.winsor_tail_p],
        "df_prior_min": float(np.min(r.extra["df_prior"])),
    }
    if trend:
        rec["s2_prior_mean"] = float(np.mean(r.extra["s2_prior"]))
    else:
        rec["s2_prior"] = float(r.extra["s2_prior"][0])
    meta.attrs["ebayes"] = rec
    meta.attrs["ebayes_genes"] = genes
