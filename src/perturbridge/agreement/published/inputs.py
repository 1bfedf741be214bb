"""Reading the public release layout the way the published analysis reads it.

A release tree holds, per dataset, ``group_rep/<cell_type>_de.h5ad`` (one DE row per
condition; ``<cell_type>.h5ad`` when the ``_de`` file is missing),
``sep_rep/<cell_type>_de.h5ad`` (one DE row per replicate sample) and the sample-level
``<dataset>_processed.h5ad`` (the only ``*.h5ad`` directly under the dataset folder).
:func:`read_release` reads them into :class:`ReleaseData` with the published rules:
gene keys from ``var["symbol"]`` when present (stripped; NaN/empty dropped; the first of
duplicated keys kept), CIDs normalised to strings, ``is_control`` parsed, the first
present of the two adjusted p-value layers, every value cast to ``float32``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...compendium.store import read_manifest
from ...io import file_sha256

__all__ = [
    "ADJ_P_LAYERS",
    "DEFile",
    "DatasetRelease",
    "ReleaseData",
    "cid_keys",
    "control_mask",
    "gene_keys",
    "numeric_key",
    "open_source",
    "read_release",
    "release_from_store",
]

logger = logging.getLogger(__name__)

#: The adjusted p-value layers, in the order of preference.
ADJ_P_LAYERS = ("adj.P.Value.within_one_contrast", "adj.P.Value.across_all_contrasts")
_MISSING = {"", "nan", "none", "<na>"}
_CONTROL_CROSS = {"true", "1", "yes"}
_CONTROL_REPLICATE = {"1", "true", "t", "yes", "y", "dmso", "control"}


def numeric_key(value: float) -> str:
    """``"%.12g"`` of a number (``"-0"`` written as ``"0"``)."""
    s = f"{float(value):.12g}"
    return "0" if s == "-0" else s


def _clean_strings(values: pd.Series) -> pd.Series:
    s = values.astype("string").fillna("").astype(str).str.strip()
    s[s.str.lower().isin(_MISSING)] = ""
    return s


def cid_keys(values: pd.Series) -> pd.Series:
    """CIDs as strings: stripped, missing spellings → ``""``, numbers written as integers
    when integral and with ``%.12g`` otherwise."""
    s = _clean_strings(values)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    fin = np.isfinite(num)
    out = s.to_numpy(dtype=object).copy()
    for i in np.flatnonzero(fin):
        v = float(num[i])
        out[i] = str(int(v)) if v.is_integer() else numeric_key(v)
    return pd.Series(out, index=values.index, dtype=object)


def control_mask(values: pd.Series, *, rule: str = "cross") -> np.ndarray:
    """``is_control`` parsed as the published cross-dataset (``"cross"``: bool dtype, else
    ``true``/``1``/``yes``) or replicate code (``"replicate"``: also ``t``, ``y``,
    ``dmso``, ``control``) does."""
    if rule == "cross" and pd.api.types.is_bool_dtype(values):
        return values.fillna(False).to_numpy(dtype=bool)
    accepted = _CONTROL_CROSS if rule == "cross" else _CONTROL_REPLICATE
    s = values.astype("string").fillna("").astype(str).str.strip().str.lower()
    return s.isin(accepted).to_numpy(dtype=bool)


def gene_keys(var: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Gene keys of a file and the ``var`` positions they come from.

    ``var["symbol"]`` when present, else ``var_names``; stripped; NaN/empty dropped;
    among duplicated keys the first in ``var`` order is kept.
    """
    raw = var["symbol"] if "symbol" in var.columns else pd.Series(var.index, index=var.index)
    s = raw.astype("string").fillna("").astype(str).str.strip().to_numpy(dtype=object)
    keep = (s != "") & ~pd.Series(s).duplicated(keep="first").to_numpy()
    pos = np.flatnonzero(keep)
    return s[pos], pos


@dataclass
class DEFile:
    """One DE file: normalised obs, gene keys and the three layers read (``float32``).

    ``obs`` has ``obs_id`` (the obs index), ``id``, ``pubchem_cid`` (normalised string),
    ``cell_type``, ``pert_time_h``, ``pert_dose_uM``, ``time_key``, ``dose_key``,
    ``is_control`` and ``eligible``; rows stay in file order.
    """

    dataset: str
    cell_type: str
    path: Path
    obs: pd.DataFrame
    genes: np.ndarray
    logfc: np.ndarray
    t: np.ndarray
    adj_p: np.ndarray
    adj_p_layer: str

    @functools.cached_property
    def gene_index(self) -> dict[str, int]:
        """Gene key → column."""
        return {g: i for i, g in enumerate(self.genes)}


@dataclass
class DatasetRelease:
    """The files of one dataset: group and replicate DE per cell type, processed obs."""

    name: str
    group: dict[str, DEFile] = field(default_factory=dict)
    replicate: dict[str, DEFile] = field(default_factory=dict)
    processed: pd.DataFrame | None = None
    processed_path: Path | None = None


@dataclass
class ReleaseData:
    """Every dataset of a release tree, in analysis order."""

    root: Path
    datasets: list[DatasetRelease]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.datasets]

    def __getitem__(self, name: str) -> DatasetRelease:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"dataset {name!r} is not in the release tree; datasets: {self.names}")


def _normal_obs(obs: pd.DataFrame, *, where: str, rule: str) -> pd.DataFrame:
    missing = [c for c in ("pubchem_cid", "pert_dose_uM", "pert_time_h") if c not in obs.columns]
    if "cell_type" not in obs.columns and "harmonized_context_key" not in obs.columns:
        missing.append("cell_type")
    if missing:
        raise ValueError(
            f"{where}: obs lacks {missing} (the release obs has cell_type, pubchem_cid, "
            f"pert_dose_uM, pert_time_h, is_control, id); columns: {list(obs.columns)[:20]}"
        )
    ctx_col = "harmonized_context_key" if "harmonized_context_key" in obs.columns else "cell_type"
    out = pd.DataFrame(index=pd.RangeIndex(len(obs)))
    out["obs_id"] = obs.index.astype(str).to_numpy()
    out["id"] = (
        _clean_strings(obs["id"]).to_numpy() if "id" in obs.columns else out["obs_id"].to_numpy()
    )
    out["pubchem_cid"] = cid_keys(obs["pubchem_cid"]).to_numpy()
    out["cell_type"] = _clean_strings(obs[ctx_col]).to_numpy()
    for col in ("pert_time_h", "pert_dose_uM"):
        raw = obs[col]
        num = pd.to_numeric(raw, errors="coerce")
        text = _clean_strings(raw.astype(object))
        bad = num.isna().to_numpy() & (text != "").to_numpy()
        if bad.any():
            first = raw[bad].astype(str).unique()[:5].tolist()
            raise ValueError(
                f"{where}: column {col!r} has values that are not numbers: {first} "
                "(a missing value is allowed, an unparseable one is not)"
            )
        out[col] = num.to_numpy(dtype=float)
    out["is_control"] = (
        control_mask(obs["is_control"], rule=rule)
        if "is_control" in obs.columns
        else np.zeros(len(obs), dtype=bool)
    )
    time = out["pert_time_h"].to_numpy()
    dose = out["pert_dose_uM"].to_numpy()
    with np.errstate(invalid="ignore"):
        out["eligible"] = (
            ~out["is_control"].to_numpy()
            & (out["pubchem_cid"] != "").to_numpy()
            & (out["cell_type"] != "").to_numpy()
            & np.isfinite(time)
            & np.isfinite(dose)
            & (dose > 0)
        )
    out["time_key"] = [numeric_key(v) if np.isfinite(v) else "" for v in time]
    out["dose_key"] = [numeric_key(v) if np.isfinite(v) else "" for v in dose]
    return out


def read_de_file(path: Path, *, dataset: str, cell_type: str, rule: str = "cross") -> DEFile:
    """One DE file of the release, read with the published rules."""
    import anndata as ad

    where = str(path)
    src = ad.read_h5ad(path)
    if "logFC" not in src.layers:
        raise ValueError(f"{where}: no 'logFC' layer; layers: {sorted(src.layers)}")
    layer = next((name for name in ADJ_P_LAYERS if name in src.layers), None)
    if layer is None:
        raise ValueError(
            f"{where}: no adjusted p-value layer (expected one of {list(ADJ_P_LAYERS)}); "
            f"layers: {sorted(src.layers)}"
        )
    genes, pos = gene_keys(src.var)

    def take(name: str) -> np.ndarray:
        if name not in src.layers:
            return np.full((src.n_obs, pos.size), np.nan, dtype=np.float32)
        arr = src.layers[name]
        arr = arr.toarray() if hasattr(arr, "toarray") else np.asarray(arr)
        return np.ascontiguousarray(arr[:, pos], dtype=np.float32)

    return DEFile(
        dataset=dataset,
        cell_type=cell_type,
        path=path,
        obs=_normal_obs(src.obs, where=where, rule=rule),
        genes=genes,
        logfc=take("logFC"),
        t=take("t"),
        adj_p=take(layer),
        adj_p_layer=layer,
    )


def _de_files(folder: Path) -> dict[str, Path]:
    """``<cell_type>_de.h5ad`` per cell type, else ``<cell_type>.h5ad``."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.h5ad")):
        if path.name.endswith("_de.h5ad"):
            found[path.name[: -len("_de.h5ad")]] = path
    for path in sorted(folder.glob("*.h5ad")):
        if not path.name.endswith("_de.h5ad"):
            found.setdefault(path.stem, path)
    return found


def _read_processed(path: Path) -> pd.DataFrame:
    """The obs of a sample-level processed file (read backed: only obs), normalised."""
    import anndata as ad

    a = ad.read_h5ad(path, backed="r")
    try:
        obs = a.obs.copy()
    finally:
        a.file.close()
    return _normal_obs(obs, where=str(path), rule="cross")


def _processed(folder: Path) -> Path | None:
    files = sorted(folder.glob("*.h5ad"))
    if not files:
        return None
    if len(files) > 1:
        raise ValueError(
            f"{folder}: more than one *.h5ad directly under the dataset folder "
            f"({[f.name for f in files]}); the release keeps only <dataset>_processed.h5ad there"
        )
    return files[0]


def read_release(
    root: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    replicates: bool = True,
) -> ReleaseData:
    """Read a release tree. ``datasets`` gives the analysis order (default: sorted)."""

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"release folder not found: {root}")
    present = sorted(p.name for p in root.iterdir() if (p / "group_rep").is_dir())
    if datasets is None:
        order = present
    else:
        order = list(dict.fromkeys(datasets))
        unknown = [d for d in order if d not in present]
        if unknown:
            raise ValueError(
                f"datasets {unknown} have no group_rep folder under {root}; present: {present}"
            )
    if not order:
        raise ValueError(f"{root}: no <dataset>/group_rep/ folders (the public release layout)")
    out = []
    for name in order:
        folder = root / name
        ds = DatasetRelease(name=name)
        for ct, path in _de_files(folder / "group_rep").items():
            ds.group[ct] = read_de_file(path, dataset=name, cell_type=ct)
        if replicates:
            sep = folder / "sep_rep"
            if not sep.is_dir() and (folder / "separate_rep").is_dir():
                sep = folder / "separate_rep"  # the name of earlier release trees
            for ct, path in _de_files(sep).items():
                ds.replicate[ct] = read_de_file(path, dataset=name, cell_type=ct, rule="replicate")
        proc = _processed(folder)
        if proc is not None:
            ds.processed, ds.processed_path = _read_processed(proc), proc
        out.append(ds)
    return ReleaseData(root=root, datasets=out)


def _is_release_tree(path: Path) -> bool:
    return path.is_dir() and any((p / "group_rep").is_dir() for p in path.iterdir() if p.is_dir())


def release_from_store(
    store: str | os.PathLike[str], *, datasets: Sequence[str] | None = None, replicates: bool = True
) -> tuple[ReleaseData, dict[str, str]]:
    """The release files a store's imported datasets came from, read as a release tree.

    The published profile reads the release files themselves (their row, gene and
    symbol order are part of the definitions), so it uses the paths and SHA-256 sums the
    import recorded in the manifest; a file that is missing or changed since the import
    is an error. Returns the data and, per dataset left out, the reason (datasets built
    from upstream files have no release files).
    """
    manifest = read_manifest(store)
    entries = manifest.get("datasets", [])
    if isinstance(entries, dict):
        entries = [{"name": k, **v} for k, v in entries.items()]
    skipped: dict[str, str] = {}
    out: list[DatasetRelease] = []
    wanted = None if datasets is None else list(dict.fromkeys(datasets))
    names = [str(e.get("name")) for e in entries]
    if wanted is not None:
        unknown = [d for d in wanted if d not in names]
        if unknown:
            raise ValueError(f"datasets {unknown} are not in the store; datasets: {names}")
    order = wanted if wanted is not None else names
    by_name = {str(e.get("name")): e for e in entries}
    for name in order:
        entry = by_name[name]
        if entry.get("source") != "release_import":
            skipped[name] = (
                "built from upstream files: the published profile reads release-layout DE "
                "files (import them with `perturbridge import-release`)"
            )
            continue
        ds = DatasetRelease(name=name)
        for item in entry.get("inputs", []):
            path = Path(item["path"])
            if not path.is_file():
                raise FileNotFoundError(
                    f"dataset {name!r}: release file {path} recorded at import is missing; "
                    "the published profile reads the release files themselves"
                )
            if item.get("sha256") and file_sha256(path) != item["sha256"]:
                raise ValueError(
                    f"dataset {name!r}: release file {path} changed since it was imported "
                    "(SHA-256 differs); import the release again"
                )
            mode = item.get("mode")
            ct = str(item.get("file_stem") or item.get("context"))
            if mode == "group":
                ds.group[ct] = read_de_file(path, dataset=name, cell_type=ct)
            elif mode == "separate" and replicates:
                ds.replicate[ct] = read_de_file(path, dataset=name, cell_type=ct, rule="replicate")
        proc = entry.get("processed")
        proc_path = Path(proc["path"] if isinstance(proc, dict) else proc) if proc else None
        if proc_path is not None and proc_path.is_file():
            want = proc.get("sha256") if isinstance(proc, dict) else None
            if want and file_sha256(proc_path) != want:
                raise ValueError(
                    f"dataset {name!r}: processed file {proc_path} changed since it was "
                    "imported (SHA-256 differs); import the release again"
                )
            ds.processed, ds.processed_path = _read_processed(proc_path), proc_path
        if not ds.group:
            skipped[name] = "no group_rep DE files were imported"
            continue
        out.append(ds)
    return ReleaseData(root=Path(store), datasets=out), skipped


def open_source(
    source: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    replicates: bool = True,
) -> tuple[ReleaseData, dict[str, str]]:
    """A release tree, or a store with imported release datasets (see
    :func:`release_from_store`)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"not found: {path} (give a release tree or a compendium store)")
    if (path / "manifest.json").is_file():
        return release_from_store(path, datasets=datasets, replicates=replicates)
    if _is_release_tree(path):
        return read_release(path, datasets=datasets, replicates=replicates), {}
    raise ValueError(
        f"{path} is neither a compendium store (manifest.json) nor a release tree "
        "(<dataset>/group_rep/<cell_type>_de.h5ad)"
    )
