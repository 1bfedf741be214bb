"""Write a store in the layout of the public release (``docs/release.md``).

:func:`export_release` writes, for each dataset of a store::

    <out>/<dataset>/group_rep/<context>_de.h5ad    one row per condition (replicates pooled)
    <out>/<dataset>/sep_rep/<context>_de.h5ad      one row per replicate sample (when the
                                                   store has separate-mode contrasts)
    <out>/<dataset>/<dataset>_processed.h5ad       the sample-level Samples (when the store
                                                   has them: imported stores have none)
    <out>/provenance.json                          what was written, from what, and why
                                                   anything was left out

with the release's ``obs`` columns (:data:`RELEASE_OBS_COLUMNS`, the published 24) and
sentinels (:data:`UNKNOWN`, :data:`NO_GUIDE`, NaN), its layer names, ``float32`` values
and its ``var`` layout (Ensembl ids as the index where the store has them, ``symbol``).
The tree is what :func:`~perturbridge.compendium.import_release` and the ``published``
agreement profile read, without any column mapping.

Effects are read through the store's reader (:class:`~perturbridge.compendium.store.
StoreEffects`: each file's own layers, its rows of the consolidated arrays and the
derived layers; every row in file order) in row blocks, so memory is bounded by
``chunk_size`` rows of one layer (and one fit's p-values when
``adj.P.Value.across_all_contrasts`` is derived);
the export is built in a sibling folder and renamed onto ``out`` at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_dir, file_sha256, read_element
from ..progress import track
from ..schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, EFFECT_LAYERS, UNKNOWN
from ._common import StoreError, canonical_json
from .api import Compendium
from .release import ADJ_P_LAYERS
from .store import StoreEffects, StoreFiles, StoreLayout

__all__ = [
    "DE_EXTRA_COLUMNS",
    "MODE_FOLDERS",
    "NO_GUIDE",
    "RELEASE_LAYERS",
    "RELEASE_OBS_COLUMNS",
    "UNKNOWN",
    "export_release",
    "release_obs",
]

logger = logging.getLogger(__name__)

#: The ``obs`` columns of the public release, in its order (sample-level and DE files).
RELEASE_OBS_COLUMNS: tuple[str, ...] = (
    "plate",
    "well",
    "cell_type",
    "perturbagen",
    "pert_type",
    "is_control",
    "pert_dose_uM",
    "pert_time_h",
    "suspension_type",
    "tissue",
    "tissue_type",
    "disease",
    "library",
    "stimulation",
    "guide",
    "dataset",
    "assay",
    "development_stage",
    "organism",
    "sex",
    "self_reported_ethnicity",
    "pubchem_cid",
    "psbulk_cells",
    "psbulk_counts",
)
#: Columns after the 24 in every exported file: the ontology ids of the biology columns
#: and where the biology came from.
ONTOLOGY_COLUMNS: tuple[str, ...] = (
    "tissue_ontology_term_id",
    "disease_ontology_term_id",
    BIOLOGY_SOURCE,
)
#: Columns after those in DE files: the first replicate's sample ``id`` (read by the
#: published profile) and what ``import-release`` needs to give back the same store.
DE_EXTRA_COLUMNS: tuple[str, ...] = (
    "id",
    "condition",
    "cell_context",
    "cell_name",
    "compound_id_source",
    "compound_inchikey",
    "compound_parent_inchikey",
    "replicate",
    "n_treated",
    "n_control",
)
#: Layers of a release DE file, in order (those the store file has are written).
RELEASE_LAYERS: tuple[str, ...] = (*EFFECT_LAYERS, "stdev.scaled")
#: Replicate mode of the store → mode folder of the release.
MODE_FOLDERS: Mapping[str, str] = {"group": "group_rep", "separate": "sep_rep"}
#: ``guide`` of a chemically perturbed sample: there is no guide.
NO_GUIDE = "none"
_FLOAT = np.float32
_PROVENANCE = "provenance.json"
_TEXT_SENTINEL = dict.fromkeys(
    ("plate", "well", "library", "stimulation", *BIOLOGY_COLUMNS), UNKNOWN
) | {"guide": NO_GUIDE}
#: The biology columns of the catalog's contrasts table (its values win in DE files).
_BIOLOGY = (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE)


@dataclass
class _DatasetReport:
    files: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    var_index: str = ""


# --------------------------------------------------------------------------- obs


def _text(obs: pd.DataFrame, name: str, default: str) -> np.ndarray:
    """A text column of ``obs`` with missing / empty values as ``default``."""
    if name not in obs.columns:
        return np.full(len(obs), default, dtype=object)
    s = obs[name].astype(object)
    vals = s.map(lambda v: default if v is None or v is pd.NA or pd.isna(v) else str(v))
    return np.where(vals.str.strip() == "", default, vals).astype(object)


def _empty_as_none(values: np.ndarray) -> np.ndarray:
    return np.array([None if v == "" else v for v in values], dtype=object)


def _floats(obs: pd.DataFrame, name: str) -> np.ndarray:
    if name not in obs.columns:
        return np.full(len(obs), np.nan)
    return pd.to_numeric(obs[name].astype(object), errors="coerce").to_numpy(dtype=float)


def _cids(obs: pd.DataFrame) -> pd.Categorical:
    """``pubchem_cid`` as integer text; missing stays missing (NA)."""
    if "pubchem_cid" not in obs.columns:
        return pd.Categorical([None] * len(obs))
    num = pd.to_numeric(obs["pubchem_cid"].astype(object), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(num) & obs["pubchem_cid"].notna().to_numpy()
    if bad.any():
        raise ValueError(
            f"pubchem_cid has values that are not numbers: "
            f"{obs['pubchem_cid'][bad].astype(str).unique()[:5].tolist()}"
        )
    return pd.Categorical([str(int(v)) if np.isfinite(v) else None for v in num])


def release_obs(obs: pd.DataFrame, *, dataset: str, assay: str) -> pd.DataFrame:
    """The release's ``obs`` columns (:data:`RELEASE_OBS_COLUMNS`, then the ontology ids)
    of Samples (or Effects) ``obs``, with the release's sentinels, same index and order.

    ``cell_type`` is the cell context; ``pert_type`` and ``is_control`` come from the
    Samples columns (a row without them is a treated ``compound`` row);
    ``psbulk_cells`` / ``psbulk_counts`` from ``n_cells`` / ``total_counts`` (NaN for
    wells that are not pseudobulks); text columns no source fills are :data:`UNKNOWN`
    (``guide``: :data:`NO_GUIDE`); a missing CID, dose or time stays missing.

    >>> obs = pd.DataFrame({"cell_context": ["A375"], "perturbagen": ["DMSO"],
    ...                     "is_control": [True], "pert_dose_uM": [0.0]}, index=["s1"])
    >>> row = release_obs(obs, dataset="d", assay="L1000").iloc[0]
    >>> row["cell_type"], row["pert_type"], row["tissue"], row["guide"], row["pert_dose_uM"]
    ('A375', 'vehicle', 'unknown', 'none', 0.0)
    """
    n = len(obs)
    if "cell_context" not in obs.columns and "cell_type" not in obs.columns:
        raise ValueError(
            f"dataset {dataset!r}: obs has no cell_context (nor cell_type); "
            f"columns: {list(obs.columns)[:15]}"
        )
    ctx = "cell_context" if "cell_context" in obs.columns else "cell_type"
    if "is_control" in obs.columns:
        is_control = obs["is_control"].fillna(False).to_numpy(dtype=bool)
    else:
        is_control = np.zeros(n, dtype=bool)
    pert_type = _text(obs, "pert_type", "")
    pert_type = np.where(pert_type != "", pert_type, np.where(is_control, "vehicle", "compound"))
    out: dict[str, Any] = {}
    for col in RELEASE_OBS_COLUMNS:
        if col in _TEXT_SENTINEL:
            out[col] = _text(obs, col, _TEXT_SENTINEL[col])
    out["cell_type"] = _text(obs, ctx, UNKNOWN)
    out["perturbagen"] = _text(obs, "perturbagen", UNKNOWN)
    out["pert_type"] = pert_type
    out["is_control"] = is_control
    out["pert_dose_uM"] = _floats(obs, "pert_dose_uM")
    out["pert_time_h"] = _floats(obs, "pert_time_h")
    out["dataset"] = np.full(n, dataset, dtype=object)
    out["assay"] = _text(obs, "assay", assay)
    out["pubchem_cid"] = _cids(obs)
    out["psbulk_cells"] = _floats(obs, "psbulk_cells" if "psbulk_cells" in obs else "n_cells")
    out["psbulk_counts"] = _floats(
        obs, "psbulk_counts" if "psbulk_counts" in obs else "total_counts"
    )
    for col in ONTOLOGY_COLUMNS:
        out[col] = _text(obs, col, UNKNOWN)
    frame = pd.DataFrame({c: out[c] for c in (*RELEASE_OBS_COLUMNS, *ONTOLOGY_COLUMNS)})
    frame.index = obs.index.astype(str).rename(None)
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = pd.Categorical(frame[col])
    return frame


def _first_samples(obs: pd.DataFrame, sep_obs: pd.DataFrame | None) -> np.ndarray:
    """Per group-mode row, the sample id of the first separate-mode row of its condition
    (the release's ``id``: the first replicate), else ``None``."""
    out = np.full(len(obs), None, dtype=object)
    if sep_obs is None or "sample_id" not in sep_obs or "condition" not in sep_obs:
        return out
    if "condition" not in obs.columns:
        return out
    keep = sep_obs.dropna(subset=["sample_id"])
    first = pd.Series(
        keep["sample_id"].astype(str).to_numpy(), index=keep["condition"].astype(str).to_numpy()
    )
    first = first[~first.index.duplicated(keep="first")]
    hits = first.reindex(obs["condition"].astype(str).to_numpy())
    out[:] = hits.astype(object).where(hits.notna(), cast(Any, None)).to_numpy()
    return out


_KEY_COLUMNS = ("cell_context", "compound_id_source", "perturbagen", "pert_dose_uM", "pert_time_h")


def _keys(obs: pd.DataFrame) -> list[tuple[str, ...]] | None:
    """Treated-condition keys of rows (context, upstream compound id, name, dose and time
    as ``%.12g``), or ``None`` when ``obs`` lacks a key column."""
    if not set(_KEY_COLUMNS) <= set(obs.columns):
        return None
    cols: list[Sequence[str]] = [_text(obs, c, "").tolist() for c in _KEY_COLUMNS[:3]]
    cols += [[f"{v:.12g}" for v in _floats(obs, c)] for c in _KEY_COLUMNS[3:]]
    return list(zip(*cols, strict=True))


def _matching_samples(obs: pd.DataFrame, sample_obs: pd.DataFrame | None) -> np.ndarray:
    """Per Effects row, the first treated sample (in Samples order) with the row's key,
    where exactly one row of the file has that key (else ``None``: the key does not say
    which condition a sample belongs to, e.g. vehicles matched on extra columns)."""
    out = np.full(len(obs), None, dtype=object)
    if sample_obs is None:
        return out
    row_keys, sample_keys = _keys(obs), _keys(sample_obs)
    if row_keys is None or sample_keys is None:
        return out
    treated = ~sample_obs["is_control"].fillna(False).to_numpy(dtype=bool)
    first: dict[tuple[str, ...], str] = {}
    for key, sid, ok in zip(sample_keys, sample_obs.index.astype(str), treated, strict=True):
        if ok:
            first.setdefault(key, sid)
    seen: dict[tuple[str, ...], int] = {}
    for key in row_keys:
        seen[key] = seen.get(key, 0) + 1
    for i, key in enumerate(row_keys):
        if seen[key] == 1:
            out[i] = first.get(key)
    return out


def _de_obs(
    obs: pd.DataFrame,
    *,
    dataset: str,
    assay: str,
    mode: str,
    sample_obs: pd.DataFrame | None,
    sep_obs: pd.DataFrame | None,
    biology: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``obs`` of a release DE file: the 24 columns, the ontology ids, then
    :data:`DE_EXTRA_COLUMNS`; the index is ``"<contrast> - <control>"``. ``biology``:
    the catalog's biology columns of the file's rows (in file order), which win."""
    n = len(obs)
    if mode == "separate" and "sample_id" in obs.columns:
        ids = _empty_as_none(_text(obs, "sample_id", ""))
    else:
        ids = _first_samples(obs, sep_obs)
        if sample_obs is not None and "is_control" in sample_obs.columns:
            by_key = _matching_samples(obs, sample_obs)
            ids = np.where(pd.isna(ids.astype(object)), by_key, ids)
    # the columns Effects do not carry come from the first replicate's sample
    base = obs.copy()
    if sample_obs is not None:
        known = np.array([i is not None and i in sample_obs.index for i in ids], dtype=bool)
        if known.any():
            rows = sample_obs.reindex(pd.Index(np.where(known, ids, "").astype(str)))
            for col in ("plate", "well", "pert_type", "library", "stimulation", "guide",
                        "n_cells", "total_counts", "assay", *_BIOLOGY):  # fmt: skip
                if col in base.columns or col not in rows.columns:
                    continue
                vals = rows[col].astype(object).to_numpy()
                vals[~known] = None
                base[col] = pd.Series(vals, index=base.index, dtype=object)
    if biology is not None:
        for col in biology.columns:
            base[col] = biology[col].astype(object).to_numpy()
    base["is_control"] = False  # a contrast is never a control row
    if "pert_type" in base.columns:
        pt = base["pert_type"].astype(object)
        base["pert_type"] = pt.where(pt.notna() & (pt != "vehicle"), "compound")
    frame = release_obs(base, dataset=dataset, assay=assay)
    contrast = obs.index.astype(str).to_numpy()
    ctrl = _text(obs, "control_label", "")
    index = [  # imported contrasts already end with their control
        c if not k or c.endswith(f" - {k}") else f"{c} - {k}"
        for c, k in zip(contrast, ctrl, strict=True)
    ]
    frame.index = pd.Index(index)
    fallback = np.where(pd.isna(ids.astype(object)), contrast, ids).astype(object)
    frame["id"] = pd.Categorical(fallback)
    condition = _text(obs, "condition", "") if "condition" in obs.columns else contrast
    frame["condition"] = pd.Categorical(condition)
    for col in DE_EXTRA_COLUMNS[2:]:
        if col in ("n_treated", "n_control"):
            src = obs[col] if col in obs.columns else pd.Series([np.nan] * n, dtype=float)
            nums = pd.to_numeric(src, errors="coerce").to_numpy(dtype=float)
            frame[col] = pd.array([pd.NA if np.isnan(v) else int(v) for v in nums], dtype="Int64")
        elif col in obs.columns:
            text = _text(obs, col, "")
            frame[col] = pd.Categorical(_empty_as_none(text))
        elif col in ("cell_context", "cell_name"):
            frame[col] = frame["cell_type"]
    if frame.index.duplicated().any():
        dup = frame.index[frame.index.duplicated()].unique()[:3].tolist()
        raise StoreError(f"dataset {dataset!r}: contrast names repeat in one file: {dup}")
    return frame


# --------------------------------------------------------------------------- var


def _is_ensembl(ids: pd.Index) -> bool:
    return len(ids) > 0 and bool(pd.Series(ids.astype(str)).str.match(r"^ENS[A-Z]*G\d+").all())


def _release_var(var: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The release's ``var``: Ensembl ids as the index (from the index, or from an
    ``ensembl_gene_id`` / ``ensembl_id`` column that gives every gene one, unique), and
    ``symbol``; the store's gene id in ``gene_id``. Returns the var and what the index
    holds (``"ensembl"`` or ``"store gene ids (not Ensembl)"``)."""
    ids = var.index.astype(str)
    symbol = _text(var, "symbol", "") if "symbol" in var.columns else np.full(len(var), "")
    out = pd.DataFrame({"symbol": symbol.astype(str), "gene_id": ids.to_numpy()}, index=ids)
    if _is_ensembl(ids):
        return out.rename_axis(None), "ensembl"
    for col in ("ensembl_gene_id", "ensembl_id"):
        if col in var.columns:
            ens = pd.Index(_text(var, col, "").astype(str))
            if (ens != "").all() and ens.is_unique and _is_ensembl(ens):
                out.index = ens
                return out.rename_axis(None), "ensembl"
    return out.rename_axis(None), "store gene ids (not Ensembl)"


# --------------------------------------------------------------------------- files


def _write_skeleton(path: Path, obs: pd.DataFrame, var: pd.DataFrame, uns: dict[str, Any]) -> None:
    import anndata as ad

    adata = ad.AnnData(obs=obs, var=var)
    adata.uns.update(uns)
    adata.write_h5ad(path)


def _copy_rows(
    src: Any, dst_group: Any, name: str, *, chunk_size: int, dtype: Any = _FLOAT
) -> None:
    """Copy a 2-D HDF5 dataset as ``dtype``, ``chunk_size`` rows at a time."""
    n, m = src.shape
    dst = dst_group.create_dataset(name, shape=(n, m), dtype=dtype)
    dst.attrs["encoding-type"] = "array"
    dst.attrs["encoding-version"] = "0.2.0"
    for r0 in range(0, n, chunk_size):
        dst[r0 : r0 + chunk_size] = np.asarray(src[r0 : r0 + chunk_size], dtype=dtype)


def _write_de_file(
    src: StoreEffects,
    out_path: Path,
    *,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    uns: dict[str, Any],
    chunk_size: int,
) -> list[str]:
    """A release DE file: no ``X``; the store file's complete layers (read through the
    store's reader: the arrays' rows and the derived layers joined back) as ``float32``,
    ``chunk_size`` rows at a time."""
    import h5py

    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write_skeleton(out_path, obs, var, uns)
    written = [name for name in RELEASE_LAYERS if name in src.layers]
    if "logFC" not in written:
        raise StoreError(f"{src.path}: no 'logFC' layer; layers: {list(src.layers)}")
    n, m = src.n_obs, len(src.var)
    with h5py.File(out_path, "a") as dst:
        for name in written:
            ds = dst["layers"].create_dataset(name, shape=(n, m), dtype=_FLOAT)
            ds.attrs["encoding-type"] = "array"
            ds.attrs["encoding-version"] = "0.2.0"
            for r0 in range(0, n, chunk_size):
                rows = np.arange(r0, min(n, r0 + chunk_size))
                ds[r0 : r0 + len(rows)] = np.asarray(src.read(name, rows), dtype=_FLOAT)
    return written


def _write_processed(
    src_path: Path,
    out_path: Path,
    *,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    uns: dict[str, Any],
    chunk_size: int,
) -> None:
    """The sample-level file: the Samples' ``X`` in its own dtype (large counts are not
    rounded to float32), release ``obs``/``var``."""
    import h5py
    from anndata.io import read_elem, write_elem

    _write_skeleton(out_path, obs, var, uns)
    with h5py.File(src_path, "r") as src, h5py.File(out_path, "a") as dst:
        if "X" in dst:
            del dst["X"]
        x = src["X"]
        if isinstance(x, h5py.Dataset):
            _copy_rows(x, dst, "X", chunk_size=chunk_size, dtype=x.dtype)
        else:  # sparse: compact already
            write_elem(dst, "X", read_elem(x))


def _read_frame(path: Path, key: str) -> pd.DataFrame:
    import h5py

    with h5py.File(path, "r") as f:
        return cast(pd.DataFrame, read_element(f[key]))


# --------------------------------------------------------------------------- export


def _check_file(comp: Compendium, rel: str) -> str:
    """The SHA-256 of a store file, checked against the store's manifest."""
    sha = file_sha256(comp.path / rel)
    rec = comp.manifest.get("files", {}).get(rel)
    if rec is not None and rec.get("sha256") not in (None, sha):
        raise StoreError(
            f"{comp.path}: {rel} does not match the store's manifest (SHA-256 differs); "
            f"run `perturbridge repair {comp.path}`"
        )
    return sha


def _export(
    comp: Compendium, out: Path, datasets: Sequence[str] | None, *, progress: bool,
    chunk_size: int,
) -> dict[str, Any]:  # fmt: skip
    have = set(comp.sql("DESCRIBE contrasts")["column_name"])
    bio_cols = [c for c in _BIOLOGY if c in have]  # stores of earlier versions lack them
    cols = ", ".join(f'"{c}"' for c in ("dataset", "mode", "effects_file", "file_row", *bio_cols))
    contrasts = comp.sql(f"SELECT {cols} FROM contrasts ORDER BY effects_file, file_row")
    rows_of = contrasts.groupby("effects_file", sort=False).indices
    files = (
        contrasts[["dataset", "mode", "effects_file"]]
        .drop_duplicates()
        .sort_values(["dataset", "mode", "effects_file"], kind="stable")
    )
    names = sorted(set(files["dataset"].astype(str)))
    if datasets is not None:
        wanted = list(dict.fromkeys(datasets))
        unknown = [d for d in wanted if d not in names]
        if unknown:
            raise KeyError(f"datasets {unknown} have no Effects in the store; datasets: {names}")
        names = wanted
        files = files[files["dataset"].isin(names)]
    table = comp.table("datasets").set_index("dataset")
    layout = StoreLayout(comp.path)
    store_files = StoreFiles(comp.path, comp.manifest)
    reports = {name: _DatasetReport() for name in names}
    sample_cache: dict[str, pd.DataFrame | None] = {}

    def samples_of(name: str) -> pd.DataFrame | None:
        if name not in sample_cache:
            path = layout.samples(name)
            sample_cache[name] = _read_frame(path, "obs") if path.is_file() else None
        return sample_cache[name]

    def value_kind_of(name: str) -> str:
        """What the Samples' X holds (``counts``, ``log_expression``, ...)."""
        if "value_kind" in table.columns and name in table.index:
            value = table.loc[name, "value_kind"]
            if isinstance(value, str) and value:
                return value
        return UNKNOWN

    def assay_of(name: str) -> str:
        if table is not None and name in table.index and "assay" in table.columns:
            value = table.loc[name, "assay"]
            if isinstance(value, str) and value:
                return value
        return UNKNOWN

    def biology_of(rel: str, n: int) -> pd.DataFrame | None:
        """The catalog's biology of the rows of one Effects file, in file order."""
        if not bio_cols:
            return None
        rows = contrasts.iloc[rows_of[rel]]
        if rows["file_row"].tolist() != list(range(n)):
            raise StoreError(f"{comp.path}: the catalog does not list the {n} rows of {rel}")
        return rows[bio_cols].reset_index(drop=True)

    uns_base = {"pipeline": "perturbridge export release", "perturbridge_version": __version__}
    jobs: list[tuple[str, Any]] = [("effects", r) for r in files.itertuples(index=False)]
    jobs += [("samples", name) for name in names]
    for kind, job in track(jobs, description="export release", enabled=progress):
        if kind == "samples":
            name = str(job)
            src = layout.samples(name)
            if not src.is_file():
                reports[name].left_out.append(
                    f"{name}_processed.h5ad: the store has no Samples of {name!r} "
                    "(imported datasets carry none)"
                )
                continue
            rel = layout.rel(src)
            sha = _check_file(comp, rel)
            sobs = cast(pd.DataFrame, samples_of(name))
            var, kind_ = _release_var(_read_frame(src, "var"))
            target = out / name / f"{name}_processed.h5ad"
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_processed(
                src, target, obs=release_obs(sobs, dataset=name, assay=assay_of(name)),
                var=var, chunk_size=chunk_size,
                uns={**uns_base, "kind": "processed", "value_kind": value_kind_of(name)},
            )  # fmt: skip
            reports[name].files.append(
                {"path": target.relative_to(out).as_posix(), "source": rel,
                 "source_sha256": sha, "rows": len(sobs)}
            )  # fmt: skip
            continue
        name, mode, rel = str(job.dataset), str(job.mode), str(job.effects_file)
        src = comp.path / rel
        sha = _check_file(comp, rel)
        obs = _read_frame(src, "obs")
        sep_obs = None
        if mode == "group":
            sep_rel = rel.replace(f"/{mode}/", "/separate/")
            if sep_rel != rel and (comp.path / sep_rel).is_file():
                sep_obs = _read_frame(comp.path / sep_rel, "obs")
        new_obs = _de_obs(
            obs, dataset=name, assay=assay_of(name), mode=mode,
            sample_obs=samples_of(name), sep_obs=sep_obs, biology=biology_of(rel, len(obs)),
        )  # fmt: skip
        var, kind_ = _release_var(_read_frame(src, "var"))
        reports[name].var_index = kind_
        folder = MODE_FOLDERS.get(mode)
        if folder is None:
            raise StoreError(f"{rel}: replicate mode {mode!r} has no release folder")
        target = out / name / folder / Path(rel).name
        layers = _write_de_file(
            store_files.open(rel), target, obs=new_obs, var=var, chunk_size=chunk_size,
            uns={**uns_base, "kind": "de", "replicate_mode": mode, "value_kind": "logFC"},
        )  # fmt: skip
        adj = [x for x in ADJ_P_LAYERS if x in layers]
        reports[name].files.append(
            {"path": target.relative_to(out).as_posix(), "source": rel, "source_sha256": sha,
             "rows": len(obs), "layers": layers, "adj_p_layer": adj[0] if adj else None}
        )  # fmt: skip
    for name in names:
        if not (out / name / MODE_FOLDERS["separate"]).is_dir():
            reports[name].left_out.append(
                "sep_rep/: the store has no separate-mode contrasts of this dataset"
            )
        if not (out / name / MODE_FOLDERS["group"]).is_dir():
            reports[name].left_out.append("group_rep/: the store has no group-mode contrasts")
    return {
        "kind": "perturbridge-release-export",
        "version": __version__,
        "store": str(comp.path),
        "build_key": comp.manifest.get("build_key"),
        "obs_columns": list(RELEASE_OBS_COLUMNS),
        "sentinels": {
            "text": UNKNOWN,
            "guide": NO_GUIDE,
            "numbers": "NaN",
            "pubchem_cid": "missing (NA)",
        },
        "dtype": "float32",
        "datasets": {
            name: {"files": r.files, "left_out": r.left_out, "var_index": r.var_index}
            for name, r in reports.items()
        },
    }


def export_release(
    store_or_compendium: str | os.PathLike[str] | Compendium,
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    progress: bool = False,
    chunk_size: int = 4096,
) -> Path:
    """Write a store in the layout of the public release (``docs/release.md``).

    Parameters
    ----------
    store_or_compendium
        A store path or an open :class:`Compendium`.
    out
        A new or empty folder; receives ``<dataset>/group_rep/<context>_de.h5ad``,
        ``<dataset>/sep_rep/<context>_de.h5ad`` (datasets with separate-mode
        contrasts), ``<dataset>/<dataset>_processed.h5ad`` (datasets with Samples) and
        ``provenance.json``. Nothing is left there if the export fails.
    datasets
        Only these datasets (default: all with Effects).
    progress
        Show a progress bar (one step per file).
    chunk_size
        Rows copied at a time (bounds memory).

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> export_release("compendium", "release")  # doctest: +SKIP
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    if isinstance(datasets, str):
        raise TypeError(f"datasets must be a list of dataset names, not the string {datasets!r}")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} is not empty; export into a new or empty folder")
    comp = (
        store_or_compendium
        if isinstance(store_or_compendium, Compendium)
        else Compendium.open(store_or_compendium)
    )
    try:
        with atomic_dir(target) as tmp:
            record = _export(comp, tmp, datasets, progress=progress, chunk_size=chunk_size)
            for info in record["datasets"].values():
                for f in info["files"]:
                    f["sha256"] = file_sha256(tmp / f["path"])
            (tmp / _PROVENANCE).write_text(canonical_json(record, indent=2), encoding="utf-8")
    finally:
        if not isinstance(store_or_compendium, Compendium):
            comp.close()
    logger.info("exported %s to %s in the release layout", comp.path, target)
    return target
