"""Read the DE files of the original public release: find them, convert them to Effects.

Two layouts are read. The public release::

    <root>/<dataset>/<dataset>_processed.h5ad        sample-level processed pseudobulk
    <root>/<dataset>/group_rep/<cell_type>_de.h5ad   one row per condition (pooled)
    <root>/<dataset>/sep_rep/<cell_type>_de.h5ad     one row per replicate sample

(``<cell_type>.h5ad`` when ``<cell_type>_de.h5ad`` is missing), and the older deep
layout of the authors' pipeline, where the mode folder sits deeper::

    <root>/<dataset>/deg_data/group_rep/full/qc_false/filter_min_cells_10/results/A549_de.h5ad
    <root>/<dataset>/.../separate_rep/.../A549_de.h5ad

The dataset is the first folder under ``root``, the mode comes from the ``group_rep``
folder (``group``) or the ``sep_rep`` / ``separate_rep`` folder (``separate``), and the
context from the file name. ``subsampling`` folders (test runs of the original pipeline)
and ``pseudobulk_processed`` folders (inputs, not DE results) are skipped. The
``<dataset>_processed.h5ad`` file is not a DE file: its path and SHA-256 go into the
dataset's manifest entry, and its ``obs`` (read alone) gives the number of treated
samples of each condition.

DE files have no ``X``; their layers are ``logFC``, ``t``, ``P.Value``, one or both
adjusted p-values (``adj.P.Value.within_one_contrast``,
``adj.P.Value.across_all_contrasts``) and possibly ``CI.L``, ``CI.R``, ``AveExpr``,
``B``, ``stdev.unscaled`` and ``stdev.scaled``. A missing Effects layer is filled with
NaN and named in ``uns["perturbridge"]["layers_filled"]``; ``adj_p_layer`` names the
adjusted p-value layer the file has (the first present of the two). The ``obs`` index
is the contrast ``"<condition> - <control>"``.

:func:`convert_release_effects` turns one file into the Effects layout:

- ``cell_context`` from ``harmonized_context_key``, else ``cell_context``, else
  ``cell_type``, else the file name;
- ``pubchem_cid`` (strings, floats or ints in the release) normalised as the published
  code does: stripped; ``""``, ``nan``, ``none``, ``<na>`` are missing; an integral
  number is written as an integer, any other number with ``%.12g``. The text goes to
  ``pubchem_cid_key`` and the integer to ``pubchem_cid`` (``Int64``); a value that is
  not a number is an error;
- rows with ``is_control`` true (a bool, or ``1``, ``true``, ``t``, ``yes``, ``y``,
  ``dmso``, ``control`` in any case) are vehicle rows, not contrasts: they go to the
  ledger as ``control_row``;
- rows with the same condition key — cell context, CID (the perturbagen name when the
  CID is missing), dose and time, plus the sample (``id``, else ``replicate``, else the
  contrast) in separate mode and the ``condition`` column when there is one (two
  compounds with one CID, e.g. two batches of a salt, are two conditions) — and the
  same values in every layer are padding: the
  first is kept, the others go to the ledger as ``duplicate_contrast``; the same key with
  different values is an error;
- ``release_row`` keeps each row's position in the file; rows stay in file order;
- ``condition``: the ``condition`` column when present; else, in group mode, the part of
  the contrast before ``" - "``; in separate mode the condition of the group-mode row
  with the same key (cell context, CID, dose, time), else a label made of that key, so
  that the replicates of one condition share it;
- ``control_label`` from the part of the contrast after ``" - "``; ``n_treated`` from an
  ``n_treated`` / ``n_replicates`` column, else (group mode) the treated samples of the
  processed file with the same key; ``n_control`` from an ``n_control`` column, else
  unknown and left missing;
- the biology columns (``organism``, ``tissue``, ``disease``, …:
  :data:`~perturbridge.schema.BIOLOGY_COLUMNS`) are kept where the file has them
  (``unknown`` for an empty value), with ``biology_source`` from the file, else
  ``release file <name>``;
- genes: the ``var`` index (Ensembl ids in the release), or the ``gene_id`` column when
  every gene has a distinct one (trees written by
  :func:`~perturbridge.compendium.export_release` keep the store's gene ids there, so
  that an exported store imports with the same genes); the release index is then kept
  as ``ensembl_gene_id``.

:func:`~perturbridge.compendium.importer.import_release` converts each file (cached by
the SHA-256 of its inputs) and writes a store from them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ..io import atomic_file, file_sha256, read_element
from ..schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, EFFECT_LAYERS, UNKNOWN
from ._common import strip_times

__all__ = [
    "ADJ_P_LAYERS",
    "CONTROL_STRINGS",
    "CONVERSION_FORMAT",
    "DE_SUFFIX",
    "SOURCE",
    "ReleaseConversion",
    "ReleaseFile",
    "adj_p_present",
    "control_mask",
    "convert_release_effects",
    "find_processed_files",
    "find_release_files",
    "group_conditions",
    "normalise_cids",
    "processed_counts",
    "read_obs",
    "scan_release",
    "write_ledger",
]

logger = logging.getLogger(__name__)

_MODE_DIRS = {"group_rep": "group", "separate_rep": "separate", "sep_rep": "separate"}
DE_SUFFIX = "_de.h5ad"
_PROCESSED = "_processed.h5ad"
_SKIP_DIRS = ("subsampling", "pseudobulk_processed")
#: The ``source`` of imported datasets in the manifest and the datasets table.
SOURCE = "release_import"
#: Bumped when the conversion changes, so that cached conversions are redone.
CONVERSION_FORMAT = 4
_STAGE = "import"

#: The adjusted p-value layers of the release, in the order the published code prefers.
ADJ_P_LAYERS: tuple[str, ...] = (
    "adj.P.Value.within_one_contrast",
    "adj.P.Value.across_all_contrasts",
)
#: Lower-cased strings of ``is_control`` that mean a control row.
CONTROL_STRINGS: frozenset[str] = frozenset({"1", "true", "t", "yes", "y", "dmso", "control"})
_MISSING_CID = frozenset({"", "nan", "none", "<na>"})
_NAME_COLUMNS = ("perturbagen_name", "perturbagen", "sm_name", "drug")
_CONTEXT_COLUMNS = ("harmonized_context_key", "cell_context", "cell_type")


@dataclass(frozen=True)
class ReleaseFile:
    """One DE file of the original release."""

    path: Path
    dataset: str
    mode: str
    context: str


@dataclass(frozen=True)
class ReleaseConversion:
    """One release file in the Effects layout, and its ledger (the rows left out)."""

    effects: Any
    ledger: pd.DataFrame


def scan_release(
    root: Path, datasets: Sequence[str] | None
) -> tuple[list[ReleaseFile], dict[str, Path]]:
    if not root.is_dir():
        raise FileNotFoundError(f"release folder not found: {root}")
    found: dict[tuple[str, str, str], Path] = {}
    fallback: dict[tuple[str, str, str], Path] = {}
    processed: dict[str, Path] = {}
    for path in sorted(root.rglob("*.h5ad")):
        parts = path.relative_to(root).parts
        if len(parts) < 2 or any(p in _SKIP_DIRS for p in parts):
            continue
        dataset = parts[0]
        if datasets is not None and dataset not in datasets:
            continue
        if len(parts) == 2:
            if path.name == f"{dataset}{_PROCESSED}":
                processed[dataset] = path
            else:
                logger.warning(
                    "%s: not <dataset>%s nor under a mode folder; skipped", path, _PROCESSED
                )
            continue
        modes = [_MODE_DIRS[p] for p in parts[1:-1] if p in _MODE_DIRS]
        if path.name.endswith(DE_SUFFIX):
            context = path.name[: -len(DE_SUFFIX)]
            target = found
        elif len(parts) == 3 and parts[1] in _MODE_DIRS:  # <dataset>/group_rep/<ct>.h5ad
            context = path.name[: -len(".h5ad")]
            target = fallback
        else:
            continue
        if len(modes) != 1:
            logger.warning(
                "%s: no group_rep/sep_rep/separate_rep folder in its path; skipped", path
            )
            continue
        key = (dataset, modes[0], context)
        if key in target:
            raise ValueError(
                f"two release files for dataset {key[0]!r}, mode {key[1]!r}, context "
                f"{key[2]!r}: {target[key]} and {path}; import one folder at a time"
            )
        target[key] = path
    for key, path in fallback.items():
        if key in found:
            logger.info("%s: %s is used instead", path, found[key].name)
        else:
            found[key] = path
    return [ReleaseFile(p, *k) for k, p in sorted(found.items())], processed


def find_release_files(
    root: str | os.PathLike[str], *, datasets: Sequence[str] | None = None
) -> list[ReleaseFile]:
    """The DE files under ``root`` in either release layout, sorted.

    ``<cell_type>_de.h5ad`` anywhere under a mode folder; ``<cell_type>.h5ad`` directly
    in ``<dataset>/<mode folder>/`` when the ``_de`` file of that cell type is missing.
    Raises ``ValueError`` when two files claim the same dataset × mode × context.
    """
    return scan_release(Path(root), datasets)[0]


def find_processed_files(
    root: str | os.PathLike[str], *, datasets: Sequence[str] | None = None
) -> dict[str, Path]:
    """The sample-level ``<root>/<dataset>/<dataset>_processed.h5ad`` files, by dataset."""
    return scan_release(Path(root), datasets)[1]


# ------------------------------------------------------------------------ obs columns


def normalise_cids(values: pd.Series | Sequence[Any], *, where: str = "obs") -> np.ndarray:
    """PubChem CIDs as text, the way the published code keys them (``None`` = missing).

    Stripped; ``""``, ``nan``, ``none`` and ``<na>`` (any case) are missing; a number is
    written as an integer when it is integral, else with ``%.12g``. Raises ``ValueError``
    naming ``where`` and the first values that are not numbers.

    >>> normalise_cids(pd.Series(["  12 ", 7.0, None, "nan", 3.5])).tolist()
    ['12', '7', None, None, '3.5']
    """
    s = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    text = s.astype(object).map(lambda v: None if v is None or v is pd.NA else str(v).strip())
    missing = text.map(lambda v: v is None or v.lower() in _MISSING_CID).to_numpy(dtype=bool)
    num = pd.to_numeric(cast(Any, text.where(~missing, cast(Any, None))), errors="coerce")
    num = np.asarray(num, dtype=float)
    bad = ~missing & ~np.isfinite(num)
    if bad.any():
        first = list(dict.fromkeys(text[bad].tolist()))[:5]
        raise ValueError(
            f"{where}: column 'pubchem_cid' has {int(bad.sum())} values that are not "
            f"PubChem CIDs (numbers), e.g. {first}; expected integers, or empty / NaN "
            "for a missing CID"
        )
    out = np.full(len(text), None, dtype=object)
    for i in np.flatnonzero(~missing):
        v = num[i]
        out[i] = str(int(v)) if float(v).is_integer() else f"{v:.12g}"
    return out


def control_mask(values: pd.Series) -> np.ndarray:
    """``is_control`` as a bool array: a bool column as it is (missing = False); numbers
    equal to 1; text in :data:`CONTROL_STRINGS` (stripped, any case).

    >>> control_mask(pd.Series(["True", "dmso", "0", None, "Y"])).tolist()
    [True, True, False, False, True]
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return (pd.to_numeric(values, errors="coerce") == 1).fillna(False).to_numpy(dtype=bool)
    text = values.astype(object).map(
        lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    )
    return text.str.strip().str.lower().isin(CONTROL_STRINGS).to_numpy(dtype=bool)


def _text(obs: pd.DataFrame, *names: str, default: Any = None) -> np.ndarray:
    """Per row, the first of ``names`` (columns of ``obs``) with a non-empty value, as
    text; ``default`` where none has one."""
    out = np.full(len(obs), default, dtype=object)
    todo = np.ones(len(obs), dtype=bool)
    for name in names:
        if name not in obs.columns:
            continue
        s = obs[name].astype(object)
        vals = s.where(s.notna(), cast(Any, None))
        vals = vals.map(lambda v: None if v is None else str(v).strip())
        ok = todo & vals.map(lambda v: bool(v)).to_numpy(dtype=bool)
        out[ok] = vals.to_numpy()[ok]
        todo &= ~ok
    return out


def _numbers(obs: pd.DataFrame, name: str, *, where: str) -> np.ndarray:
    if name not in obs.columns:
        raise ValueError(
            f"{where}: obs lacks {name!r} (release files carry pert_dose_uM and "
            f"pert_time_h); columns: {list(obs.columns)[:15]}"
        )
    s = obs[name]
    num = pd.to_numeric(s.astype(object), errors="coerce").to_numpy(dtype=float)
    text = s.astype(object).map(lambda v: "" if pd.isna(v) else str(v).strip().lower())
    bad = np.isnan(num) & ~text.isin(["", "nan", "none", "<na>"]).to_numpy(dtype=bool)
    if bad.any():
        raise ValueError(
            f"{where}: column {name!r} has values that are not numbers, e.g. "
            f"{list(dict.fromkeys(s[bad].astype(str)))[:5]}"
        )
    return num


def _g(v: float) -> str:
    return f"{v:.12g}"


def _keys(
    context: np.ndarray, cid: np.ndarray, name: np.ndarray, dose: np.ndarray, time: np.ndarray
) -> list[tuple[str, ...]]:
    """Condition keys: context, ``cid:<CID>`` (``name:<perturbagen>`` without a CID),
    dose and time (``%.12g``). Tuples for comparison only, never parsed."""
    return [
        (str(c), f"cid:{k}" if k is not None else f"name:{n}", _g(d), _g(t))
        for c, k, n, d, t in zip(context, cid, name, dose, time, strict=True)
    ]


def _key_label(key: tuple[str, ...]) -> str:
    ctx, compound, dose, time = key[:4]
    return f"{ctx}|{compound.split(':', 1)[1]}|{dose}uM|{time}h"


def processed_counts(path: Path) -> tuple[Counter[tuple[str, ...]], int, int]:
    """Treated samples per condition key, all samples and control samples of a
    processed file (its ``obs`` only)."""
    import h5py

    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            obs = read_element(f["obs"])
    except (OSError, KeyError) as err:
        raise ValueError(f"{where}: not a readable .h5ad file ({err})") from err
    n = len(obs)
    ctrl = control_mask(obs["is_control"]) if "is_control" in obs.columns else np.zeros(n, bool)
    if "pert_dose_uM" not in obs.columns or "pert_time_h" not in obs.columns:
        return Counter(), n, int(ctrl.sum())
    cid = (
        normalise_cids(obs["pubchem_cid"], where=where)
        if "pubchem_cid" in obs.columns
        else np.full(n, None, dtype=object)
    )
    keys = _keys(
        _text(obs, *_CONTEXT_COLUMNS, default=""),
        cid,
        _text(obs, *_NAME_COLUMNS, default=""),
        _numbers(obs, "pert_dose_uM", where=where),
        _numbers(obs, "pert_time_h", where=where),
    )
    return Counter(k for k, c in zip(keys, ctrl, strict=True) if not c), n, int(ctrl.sum())


# ------------------------------------------------------------------------- conversion


def _drop_duplicates(
    keys: list[tuple[str, ...]],
    layers: Mapping[str, np.ndarray],
    rows: np.ndarray,
    contrast: np.ndarray,
    *,
    where: str,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows to keep (a mask over ``rows``) and ``(dropped, kept)`` release-row pairs of
    identical duplicates; differing duplicates raise ``ValueError``."""
    keep = np.ones(len(keys), dtype=bool)
    first: dict[tuple[str, ...], int] = {}
    dropped: list[tuple[int, int]] = []
    differ: list[str] = []
    for i, k in enumerate(keys):
        j = first.setdefault(k, i)
        if j == i:
            continue
        same = [np.array_equal(m[rows[i]], m[rows[j]], equal_nan=True) for m in layers.values()]
        if all(same):
            keep[i] = False
            dropped.append((int(rows[i]), int(rows[j])))
        else:
            layer = list(layers)[same.index(False)]
            differ.append(
                f"rows {rows[j]} ({contrast[j]!r}) and {rows[i]} ({contrast[i]!r}) "
                f"differ in {layer!r}"
            )
    if differ:
        raise ValueError(
            f"{where}: {len(differ)} contrasts repeat a condition key (cell context, CID, "
            f"dose, time{''.join(', ' + str(k).split(':')[0] for k in keys[0][4:])}) with "
            "different values: "
            f"{'; '.join(differ[:3])}; identical repeats (batch padding) are collapsed, "
            "differing ones must be resolved in the release file"
        )
    return keep, dropped


def convert_release_effects(
    path: Path,
    *,
    dataset: str,
    mode: str,
    context: str,
    group_conditions: Mapping[tuple[str, ...], str] | None = None,
    processed_counts: Mapping[tuple[str, ...], int] | None = None,
) -> ReleaseConversion:
    """One release DE file as Effects (the layout of :mod:`perturbridge.schema`) and a
    ledger of the rows left out (control rows, identical duplicates).

    ``group_conditions`` maps condition keys to the conditions of the group-mode file
    of the same context (for separate-mode files); ``processed_counts`` maps them to
    the number of treated samples in the processed file (for ``n_treated``).
    """
    import anndata as ad

    where = str(path)
    try:
        src = ad.read_h5ad(path)
    except (OSError, KeyError) as err:
        raise ValueError(f"{where}: not a readable .h5ad file ({err})") from err
    obs = src.obs
    if "logFC" not in src.layers:
        raise ValueError(f"{where}: no 'logFC' layer; layers: {list(src.layers)}")
    dose_all = _numbers(obs, "pert_dose_uM", where=where)
    time_all = _numbers(obs, "pert_time_h", where=where)
    names_all = _text(obs, *_NAME_COLUMNS, "perturbation_label")
    has_cid = "pubchem_cid" in obs.columns
    if not has_cid and all(v is None for v in names_all):
        raise ValueError(
            f"{where}: obs names no compound (no 'pubchem_cid' and no perturbagen column "
            f"{list(_NAME_COLUMNS)}); columns: {list(obs.columns)[:15]}"
        )
    cid_all = (
        normalise_cids(obs["pubchem_cid"], where=where)
        if has_cid
        else np.full(len(obs), None, dtype=object)
    )
    contrast_all = obs.index.astype(str).to_numpy()
    ctx_all = _text(obs, *_CONTEXT_COLUMNS, default=context)
    names_all = np.where(
        pd.isna(names_all.astype(object)),
        np.array([f"CID {c}" if c is not None else None for c in cid_all], dtype=object),
        names_all,
    )
    ledger: list[dict[str, str]] = []
    is_ctrl = (
        control_mask(obs["is_control"]) if "is_control" in obs.columns else np.zeros(len(obs), bool)
    )
    for i in np.flatnonzero(is_ctrl):
        ledger.append(
            {"id": contrast_all[i], "stage": _STAGE, "status": "dropped", "reason": "control_row",
             "detail": f"release row {i}: is_control={obs['is_control'].iloc[i]!r}"}
        )  # fmt: skip
    rows = np.flatnonzero(~is_ctrl)
    layer_values = {k: np.asarray(v, dtype=np.float64) for k, v in src.layers.items()}
    keys = _keys(
        ctx_all[rows],
        cid_all[rows],
        np.asarray([str(n) for n in names_all[rows]], dtype=object),
        dose_all[rows],
        time_all[rows],
    )
    if mode == "separate":
        sample = _text(obs, "id", "replicate", default=None)[rows]
        sample = np.where(pd.isna(sample.astype(object)), contrast_all[rows], sample)
        dup_keys = [(*k, f"sample:{s}") for k, s in zip(keys, sample, strict=True)]
    else:
        dup_keys = list(keys)
    if "condition" in obs.columns:  # rows of different named conditions are never padding
        named = obs["condition"].astype(str).to_numpy()[rows]
        dup_keys = [(*k, f"condition:{c}") for k, c in zip(dup_keys, named, strict=True)]
    if len(rows):
        keep, dropped = _drop_duplicates(
            dup_keys, layer_values, rows, contrast_all[rows], where=where
        )
        for r, first in dropped:
            ledger.append(
                {"id": contrast_all[r], "stage": _STAGE, "status": "dropped",
                 "reason": "duplicate_contrast",
                 "detail": f"release row {r} repeats row {first} ({contrast_all[first]}) "
                           "with the same key and values"}
            )  # fmt: skip
        keys = [k for k, ok in zip(keys, keep, strict=True) if ok]
        rows = rows[keep]
    contrast = contrast_all[rows]
    dup = pd.Index(contrast)[pd.Index(contrast).duplicated()]
    if len(dup):
        raise ValueError(
            f"{where}: contrast names (obs index) repeat with different condition keys, "
            f"e.g. {list(dict.fromkeys(dup))[:3]}; each contrast needs its own name"
        )
    sub = obs.iloc[rows]
    split = pd.Series(contrast, dtype=object).str.rpartition(" - ")
    has_control = (split[1] == " - ").to_numpy()
    if "condition" in sub.columns:
        condition = sub["condition"].astype(str).to_numpy()
    elif mode == "separate":
        lookup = group_conditions or {}
        condition = np.array([lookup.get(k, _key_label(k)) for k in keys], dtype=object)
    else:
        condition = np.where(has_control, split[0].to_numpy(), contrast)
    control_label = np.where(has_control, split[2].to_numpy(), "vehicle")
    n = len(rows)

    def ints(*names: str) -> Any:
        for name in names:
            if name in sub.columns:
                return pd.array(pd.to_numeric(sub[name], errors="coerce"), dtype="Int64")
        return pd.array([pd.NA] * n, dtype="Int64")

    n_treated = ints("n_treated", "n_replicates")
    n_treated_from = next((c for c in ("n_treated", "n_replicates") if c in sub.columns), None)
    if n_treated_from is None and mode == "group" and processed_counts is not None:
        n_treated = pd.array([processed_counts.get(k) for k in keys], dtype="Int64")
        n_treated_from = "processed file"
    cid = cid_all[rows]
    new_obs = pd.DataFrame(
        {
            "dataset": pd.Categorical([dataset] * n),
            "cell_context": pd.Categorical(ctx_all[rows]),
            "cell_name": pd.Categorical(_text(sub, "cell_name", "cell_type", default=context)),
            "perturbagen": pd.Categorical(names_all[rows]),
            "compound_id_source": pd.Categorical(
                _text(sub, "compound_id_source", "perturbagen", "pert_id")
            ),
            "compound_inchikey": pd.Categorical(
                _text(sub, "compound_inchikey", "inchikey", "inchi_key")
            ),
            "compound_parent_inchikey": pd.Categorical(_text(sub, "compound_parent_inchikey")),
            "pubchem_cid": pd.array(
                [int(c) if c is not None and c.lstrip("-").isdigit() else pd.NA for c in cid],
                dtype="Int64",
            ),
            "pubchem_cid_key": pd.Categorical(cid),
            "pert_dose_uM": dose_all[rows],
            "pert_time_h": time_all[rows],
            "replicate": pd.Categorical(_text(sub, "replicate")),
            "control_label": pd.Categorical(control_label),
            "n_treated": n_treated,
            "n_control": ints("n_control"),
            "condition": pd.Categorical(condition),
            "release_row": rows.astype(np.int64),
        },
        index=pd.Index(contrast, name="contrast"),
    )
    for col in ("id", "plate", "well", "perturbation_label"):
        if col in sub.columns:
            new_obs["sample_id" if col == "id" else col] = pd.Categorical(_text(sub, col))
    biology = [c for c in BIOLOGY_COLUMNS if c in sub.columns]
    for col in biology:  # the release's biological context (organism, tissue, ...)
        new_obs[col] = pd.Categorical(_text(sub, col, default=UNKNOWN))
    if BIOLOGY_SOURCE in sub.columns:
        new_obs[BIOLOGY_SOURCE] = pd.Categorical(_text(sub, BIOLOGY_SOURCE, default=UNKNOWN))
    elif biology:
        new_obs[BIOLOGY_SOURCE] = pd.Categorical([f"release file {path.name}"] * n)
    var = _store_gene_ids(src.var)
    genes = var.index.to_numpy(dtype=object)
    symbol = _text(var, "symbol") if "symbol" in var.columns else np.full(len(var), None)
    var["symbol"] = np.where(pd.isna(symbol.astype(object)), genes, symbol).astype(str)
    for col in var.columns:  # .h5ad cannot store text with gaps as objects
        s = var[col]
        if s.dtype == object:
            var[col] = pd.Categorical(s.where(s.isna(), s.astype(str)))
    layers: dict[str, np.ndarray] = {}
    filled = []
    for name in EFFECT_LAYERS:
        if name in layer_values:
            layers[name] = layer_values[name][rows]
        else:
            filled.append(name)
            layers[name] = np.full((n, src.n_vars), np.nan)
    if "stdev.scaled" in layer_values:
        layers["stdev.scaled"] = layer_values["stdev.scaled"][rows]
    adj_p = [k for k in ADJ_P_LAYERS if k in layer_values]
    if filled:
        logger.info("%s: layers %s missing; filled with NaN", where, filled)
    eff = ad.AnnData(X=layers["logFC"].copy(), obs=new_obs, var=var, layers=layers)
    eff.uns["perturbridge"] = {
        "kind": "effects",
        "value_kind": "logFC",
        "replicate_mode": mode,
        "params": {"method": "imported from the original release"},
        "imported_from": {"file": path.name, "sha256": file_sha256(path)},
        "adj_p_layer": adj_p[0] if adj_p else "none",
        "adj_p_layers_present": adj_p,
        "layers_filled": filled,
        "n_treated_from": n_treated_from or "unknown",
        "original_uns": strip_times(_plain_uns(dict(src.uns))),
    }
    frame = pd.DataFrame(ledger, columns=["id", "stage", "status", "reason", "detail"])
    return ReleaseConversion(eff, frame.astype(str))


def _store_gene_ids(var: pd.DataFrame) -> pd.DataFrame:
    """``var`` indexed by gene id: the ``gene_id`` column where a tree written by
    ``export_release`` has it (every value present and unique; the store's own gene ids,
    so that the round trip gives back the same genes) with the release's index kept as
    ``ensembl_gene_id`` when it differs; else the release's index."""
    out = var.copy()
    out.index = out.index.astype(str)
    if "gene_id" not in out.columns:
        return out
    ids = out.pop("gene_id").astype(object)
    text = ids.map(lambda v: "" if v is None or pd.isna(v) else str(v).strip())
    if (text == "").any() or text.duplicated().any():
        return out
    if not (text.to_numpy() == out.index.to_numpy()).all():
        out["ensembl_gene_id"] = out.index.to_numpy()
    out.index = pd.Index(text.to_numpy(dtype=str))
    return out


def _plain_uns(uns: dict[str, Any]) -> dict[str, Any]:
    """Keep only the scalar/string entries of an upstream ``uns`` (others are dropped)."""
    out: dict[str, Any] = {}
    for k, v in uns.items():
        if isinstance(v, (str, int, float, bool)):
            out[str(k)] = v
    return out


def group_conditions(path: Path) -> dict[tuple[str, ...], str]:
    """Condition key → condition of a converted group-mode file."""
    obs = read_obs(path)
    if obs.empty:
        return {}
    cid = obs["pubchem_cid_key"].astype(object)
    keys = _keys(
        obs["cell_context"].astype(str).to_numpy(),
        cid.where(cid.notna(), cast(Any, None)).to_numpy(),
        obs["perturbagen"].astype(str).to_numpy(),
        obs["pert_dose_uM"].to_numpy(dtype=float),
        obs["pert_time_h"].to_numpy(dtype=float),
    )
    return dict(zip(keys, obs["condition"].astype(str), strict=True))


def read_obs(path: Path) -> pd.DataFrame:
    import h5py

    with h5py.File(path, "r") as f:
        obs: pd.DataFrame = read_element(f["obs"])
    return obs


def write_ledger(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_file(path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame.astype(str), preserve_index=False), tmp)


def adj_p_present(path: Path) -> list[str]:
    """The adjusted p-value layers a converted file's release file had."""
    import h5py

    with h5py.File(path, "r") as f:
        meta = read_element(f["uns"]).get("perturbridge", {})
    return [str(x) for x in np.atleast_1d(meta.get("adj_p_layers_present", []))]
