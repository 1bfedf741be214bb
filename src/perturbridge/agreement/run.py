"""``run_agreement``: every agreement diagnostic of a store, with its tables on disk.

>>> res = run_agreement("compendium", AgreementOptions(n_boot=500), out="out")  # doctest: +SKIP
>>> res.cross_summary.query("level == 'all' and metric == 'deg_spearman'")  # doctest: +SKIP
>>> res = read_agreement("agreement")  # doctest: +SKIP

The output folder is written atomically: every table goes into a temporary sibling
folder, which is renamed onto ``out`` only when everything succeeded (a previous output
folder is replaced). A failure leaves no output folder behind.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from .._version import __version__
from ..compendium import Compendium
from ..compendium._common import canonical_json
from ..io import atomic_dir
from .cross import SignatureOptions, cross_pairs, dose_sensitivity_table, summarize_cross
from .matching import match_conditions
from .metrics import PAIR_METRICS, SCORES
from .options import AgreementOptions, CompareOptions
from .replicate import replicate_agreement
from .signatures import DE_RULES, ZSCORES, zscore_stats

__all__ = [
    "TABLES",
    "AgreementOptions",
    "AgreementResult",
    "read_agreement",
    "run_agreement",
    "write_agreement",
]

logger = logging.getLogger(__name__)

#: Tables of an agreement folder (each as ``<name>.parquet`` and ``<name>.csv``).
TABLES = (
    "pairs",
    "retrieval",
    "cross_summary",
    "replicate_summary",
    "replicate_pairs",
    "excluded",
    "strata",
    "dose_sensitivity",
)
INFO_FILE = "agreement.json"
FORMAT = "perturbridge-agreement"


@dataclass
class AgreementResult:
    """The agreement tables of one store (see ``docs/agreement.md``).

    ``dose_sensitivity`` is ``None`` unless asked for. ``info`` holds the options,
    store path, build key, package version, counts and timings (``agreement.json``).
    """

    pairs: pd.DataFrame
    retrieval: pd.DataFrame
    cross_summary: pd.DataFrame
    replicate_summary: pd.DataFrame
    replicate_pairs: pd.DataFrame
    excluded: pd.DataFrame
    strata: pd.DataFrame
    dose_sensitivity: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The options of the run."""
        return dict(self.info.get("options", {}))

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by name (without ``dose_sensitivity`` when it was not computed)."""
        out = {name: getattr(self, name) for name in TABLES}
        return {k: v for k, v in out.items() if v is not None}


def _check_options(
    identity: str,
    zscore: str,
    score: str,
    de_rule: str,
    metrics: Sequence[str] | None,
    max_peers: int,
    n_boot: int,
    alpha: float,
) -> None:
    problems = []
    if identity not in ("parent", "inchikey", "cid"):
        problems.append(f"identity must be parent|inchikey|cid, found {identity!r}")
    if zscore not in ZSCORES:
        problems.append(f"zscore must be one of {ZSCORES}, found {zscore!r}")
    if score not in SCORES:
        problems.append(f"score must be one of {SCORES}, found {score!r}")
    if de_rule not in DE_RULES:
        problems.append(f"de_rule must be one of {DE_RULES}, found {de_rule!r}")
    if metrics is not None:
        unknown = [m for m in metrics if m not in PAIR_METRICS]
        if unknown:
            problems.append(f"unknown metrics {unknown}; known: {list(PAIR_METRICS)}")
    if max_peers < 0:
        problems.append(f"max_peers must be >= 0, found {max_peers}")
    if n_boot < 0:
        problems.append(f"n_boot must be >= 0 (0: no intervals), found {n_boot}")
    if not 0 < alpha <= 1:
        problems.append(f"alpha must lie in (0, 1], found {alpha}")
    if problems:
        raise ValueError("invalid agreement options: " + "; ".join(problems))


def run_agreement(
    store: str | os.PathLike[str] | Compendium,
    options: AgreementOptions | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> AgreementResult:
    """Cross-dataset and replicate agreement of a compendium store.

    Parameters
    ----------
    store
        A store path or an open :class:`~perturbridge.compendium.Compendium`.
    options
        What to compute (:class:`.AgreementOptions`; default: its defaults).
    out
        Write every table (Parquet and CSV) and ``agreement.json`` into this folder,
        atomically (replacing an earlier agreement folder; any other non-empty folder is
        refused).
    progress
        Show progress bars.

    Returns
    -------
    AgreementResult

    Examples
    --------
    >>> options = AgreementOptions(n_boot=200)  # doctest: +SKIP
    >>> res = run_agreement("compendium", options, out="agreement")  # doctest: +SKIP
    """
    o = options or AgreementOptions()
    identity, max_log10_dose, min_compounds = o.identity, o.max_log10_dose, o.min_compounds
    alpha, lfc_min, de_rule, z_min = o.alpha, o.lfc_min, o.de_rule, o.z_min
    zscore, metrics, score, max_peers = o.zscore, o.metrics, o.score, o.max_peers
    n_boot, seed, datasets = o.n_boot, o.seed, o.datasets
    dose_sensitivity, replicates = o.dose_sensitivity, o.replicates
    _check_options(identity, zscore, score, de_rule, metrics, max_peers, n_boot, alpha)
    names = list(PAIR_METRICS) if metrics is None else list(dict.fromkeys(metrics))
    out_path = None if out is None else Path(out).absolute()
    if out_path is not None:
        _check_out(out_path)
    own = not isinstance(store, Compendium)
    comp = store if isinstance(store, Compendium) else Compendium.open(store)
    try:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        conds = comp.conditions(dataset=list(datasets) if datasets is not None else None)
        group_ok = (
            conds["zarr_row_group"].notna().to_numpy()
            if "zarr_row_group" in conds
            else np.ones(len(conds), dtype=bool)
        )
        match = match_conditions(
            conds[group_ok],
            identity=identity,
            max_log10_dose=max_log10_dose,
            min_compounds=min_compounds,
        )
        excluded = _with_no_group(match.excluded, conds[~group_ok])
        timings["match"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        stats = zscore_stats(comp, conds[group_ok], by=zscore, mode="group")
        sig = SignatureOptions(
            mode="group", alpha=alpha, lfc_min=lfc_min, de_rule=de_rule, z_min=z_min, zscore=stats
        )
        timings["zscore"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        compare = CompareOptions(metrics=names, max_peers=max_peers, seed=seed, n_boot=n_boot)
        pairs, ret = cross_pairs(
            comp, match, signatures=sig, compare=compare, score=score, progress=progress
        )
        timings["cross"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cross_summary = summarize_cross(pairs, ret, metrics=names, n_boot=n_boot, seed=seed)
        timings["cross_summary"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if replicates:
            sep_stats = (
                zscore_stats(comp, conds[_n_separate(conds) > 0], by=zscore, mode="separate")
                if zscore != "none" and "separate" in comp.modes
                else None
            )
            rep_sig = SignatureOptions(
                mode="separate",
                alpha=alpha,
                lfc_min=lfc_min,
                de_rule=de_rule,
                z_min=z_min,
                zscore=sep_stats,
            )
            rep_pairs, rep_summary = replicate_agreement(
                comp, conds, signatures=rep_sig, compare=compare, progress=progress
            )
        else:
            rep_pairs, rep_summary = pd.DataFrame(), pd.DataFrame()
        timings["replicate"] = time.perf_counter() - t0

        dose_table = None
        if dose_sensitivity:
            t0 = time.perf_counter()
            loose = match_conditions(
                conds[group_ok],
                identity=identity,
                max_log10_dose=max(1.0, float(max_log10_dose)),
                min_compounds=1,
            )
            loose_pairs, _ = cross_pairs(
                comp,
                loose,
                signatures=sig,
                compare=compare,
                score=score,
                with_retrieval=False,
                progress=progress,
            )
            dose_table = dose_sensitivity_table(
                loose_pairs, metrics=names, min_compounds=min_compounds
            )
            timings["dose_sensitivity"] = time.perf_counter() - t0

        recorded = {
            "identity": identity,
            "max_log10_dose": float(max_log10_dose),
            "min_compounds": int(min_compounds),
            "alpha": float(alpha),
            "lfc_min": lfc_min,
            "zscore": zscore,
            "metrics": names,
            "score": score,
            "max_peers": int(max_peers),
            "n_boot": int(n_boot),
            "seed": int(seed),
            "dose_sensitivity": bool(dose_sensitivity),
            "replicates": bool(replicates),
            "de_rule": de_rule,
            "z_min": float(z_min),
            "datasets": None if datasets is None else sorted(map(str, datasets)),
            "confidence": 0.95,
        }
        info = {
            "format": FORMAT,
            "profile": "perturbridge",
            "options": recorded,
            "store": str(comp.path),
            "build_key": comp.manifest.get("build_key", ""),
            "version": __version__,
            "counts": {
                "conditions": len(conds),
                "datasets": sorted(conds["dataset"].astype(str).unique().tolist()),
                "pairs": len(pairs),
                "retrieval_queries": len(ret),
                "strata_kept": int(match.strata["kept"].sum()) if len(match.strata) else 0,
                "strata_dropped": int((~match.strata["kept"].astype(bool)).sum())
                if len(match.strata)
                else 0,
                "replicate_conditions": len(rep_pairs),
            },
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        result = AgreementResult(
            pairs=pairs,
            retrieval=ret,
            cross_summary=cross_summary,
            replicate_summary=rep_summary,
            replicate_pairs=rep_pairs,
            excluded=excluded,
            strata=match.strata,
            dose_sensitivity=dose_table,
            info=info,
        )
    finally:
        if own:
            comp.close()
    if out_path is not None:
        write_agreement(result, out_path)
    return result


def _n_separate(conds: pd.DataFrame) -> np.ndarray:
    if "n_separate" not in conds:
        return np.zeros(len(conds))
    return pd.to_numeric(conds["n_separate"], errors="coerce").fillna(0).to_numpy()


def _with_no_group(excluded: pd.DataFrame, no_group: pd.DataFrame) -> pd.DataFrame:
    """``excluded`` plus the conditions without a group-mode contrast."""
    if not len(no_group):
        return excluded
    g = no_group.groupby(no_group["dataset"].astype(str), sort=True)
    extra = pd.DataFrame(
        {
            "dataset": list(g.groups),
            "other_dataset": "*",
            "status": "unusable",
            "reason": "no_group_contrast",
            "n_conditions": g.size().to_numpy(),
            "n_compounds": g["compound_id"].nunique().to_numpy()
            if "compound_id" in no_group
            else 0,
        }
    )
    return pd.concat([excluded, extra], ignore_index=True)


# --------------------------------------------------------------------------- files


def _check_out(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / INFO_FILE).is_file():
        raise FileExistsError(
            f"--out {path} is a non-empty folder that is not an agreement output "
            f"(no {INFO_FILE}); give a new or empty folder"
        )


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
            out[col] = s.astype(object).where(s.notna(), cast(Any, None))
    return out


def write_agreement_folder(
    out: str | os.PathLike[str], tables: Mapping[str, pd.DataFrame], info: Mapping[str, Any]
) -> Path:
    """Write ``tables`` (Parquet and CSV) and ``agreement.json`` into the folder ``out``
    atomically: a temporary sibling renamed into place, an earlier agreement folder
    replaced, any other non-empty folder refused. Shared by every agreement profile."""
    out = Path(out).absolute()
    _check_out(out)
    with atomic_dir(out, replace=True) as tmp:
        for name, table in tables.items():
            frame = _plain_frame(table)
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
            frame.to_csv(tmp / f"{name}.csv", index=False)
        full = dict(info)
        full["tables"] = sorted(tables)
        (tmp / INFO_FILE).write_text(canonical_json(full, indent=2), encoding="utf-8")
    return out


def write_agreement(result: AgreementResult, out: str | os.PathLike[str]) -> Path:
    """Write ``result`` into the folder ``out`` atomically (see the module docstring)."""
    return write_agreement_folder(out, result.tables, result.info)


def read_agreement(folder: str | os.PathLike[str]) -> AgreementResult:
    """Read an agreement folder written by :func:`run_agreement`."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{folder} is not an agreement folder (no {INFO_FILE}); write one with "
            "`perturbridge agreement STORE --out DIR`"
        )
    info = json.loads(info_path.read_text(encoding="utf-8"))
    tables: dict[str, pd.DataFrame | None] = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        tables[name] = pd.read_parquet(path) if path.is_file() else None
    missing = [n for n in TABLES if tables[n] is None and n != "dose_sensitivity"]
    if missing:
        raise FileNotFoundError(f"{folder}: tables missing: {missing}")
    return AgreementResult(info=info, **tables)  # type: ignore[arg-type]
