"""Import DE files of the original public release into a compendium store.

The original release keeps one ``<cell type>_de.h5ad`` per dataset × replicate mode ×
cell type in folders named by parameters, for example::

    <root>/<dataset>/deg_data/group_rep/full/qc_false/filter_min_cells_10/results/A549_de.h5ad
    <root>/<dataset>/separate_rep/.../A549_de.h5ad

The dataset is the first folder under ``root``, the mode comes from the ``group_rep`` /
``separate_rep`` folder, and the context from the file name. ``subsampling`` folders
(test runs of the original pipeline) are skipped. Each file has the Effects layers
(``logFC``, ``t``, ``P.Value``, the two adjusted p-values, ``CI.L``, ``CI.R``,
``AveExpr``, ``B``, ``stdev.unscaled``; ``stdev.scaled`` is kept too) and an ``obs``
with the treated condition's metadata (``cell_type``, ``perturbagen``,
``pert_dose_uM``, ``pert_time_h``, ``pubchem_cid``, …), indexed by the contrast
``"<condition> - <control>"``. A ``condition`` column, when present, names the
pooled condition of each contrast (separate mode); otherwise the condition is the part of
the contrast name before ``" - "``.

:func:`import_release` converts each file to the Effects layout (``cell_context``,
``control_label`` from the part of the contrast name after ``" - "``; ``n_treated`` /
``n_control`` are unknown and left missing), caches the conversion by the file's
SHA-256, and writes a store with the same layout, catalog and arrays as a build.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import file_sha256, write_h5ad
from ..schema import EFFECT_LAYERS
from ._common import PlanError, StoreError, digest, safe_name, strip_times, write_json_atomic
from .plan import DEFAULT_ZARR_LAYERS, check_store_path
from .store import DatasetPart, EffectsPart, mark_store, store_is_current, write_store
from .tasks import TaskCache

__all__ = ["ReleaseFile", "find_release_files", "import_release"]

logger = logging.getLogger(__name__)

_MODE_DIRS = {"group_rep": "group", "separate_rep": "separate"}
_SUFFIX = "_de.h5ad"


@dataclass(frozen=True)
class ReleaseFile:
    """One DE file of the original release."""

    path: Path
    dataset: str
    mode: str
    context: str


def find_release_files(
    root: str | os.PathLike[str], *, datasets: Sequence[str] | None = None
) -> list[ReleaseFile]:
    """The ``*_de.h5ad`` files under ``root`` in the original release layout, sorted.

    Raises ``ValueError`` when two files claim the same dataset × mode × context.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"release folder not found: {root}")
    found: dict[tuple[str, str, str], Path] = {}
    for path in sorted(root.rglob(f"*{_SUFFIX}")):
        parts = path.relative_to(root).parts
        if len(parts) < 2 or "subsampling" in parts:
            continue
        modes = [_MODE_DIRS[p] for p in parts[1:-1] if p in _MODE_DIRS]
        if len(modes) != 1:
            logger.warning("%s: no group_rep/separate_rep folder in its path; skipped", path)
            continue
        dataset = parts[0]
        if datasets is not None and dataset not in datasets:
            continue
        key = (dataset, modes[0], path.name[: -len(_SUFFIX)])
        if key in found:
            raise ValueError(
                f"two release files for dataset {key[0]!r}, mode {key[1]!r}, context "
                f"{key[2]!r}: {found[key]} and {path}; import one folder at a time"
            )
        found[key] = path
    return [ReleaseFile(p, *k) for k, p in sorted(found.items())]


def _text(obs: pd.DataFrame, *names: str, default: Any = None) -> Any:
    """The first of ``names`` that is a column of ``obs`` (as objects, None for NA),
    else ``[default] * len(obs)``."""
    for name in names:
        if name in obs.columns:
            s = obs[name]
            return s.astype(object).where(s.notna(), None).to_numpy()
    return [default] * len(obs)


def convert_release_effects(path: Path, *, dataset: str, mode: str, context: str) -> Any:
    """One release file as Effects (the layout of :mod:`perturbridge.schema`)."""
    import anndata as ad

    src = ad.read_h5ad(path)
    obs = src.obs
    where = str(path)
    n = src.n_obs
    if "logFC" not in src.layers:
        raise ValueError(f"{where}: no 'logFC' layer; layers: {list(src.layers)}")
    for col in ("pert_dose_uM", "pert_time_h"):
        if col not in obs.columns:
            raise ValueError(
                f"{where}: obs lacks {col!r} (release files carry pert_dose_uM and "
                f"pert_time_h); columns: {list(obs.columns)[:15]}"
            )
    contrast = obs.index.astype(str)
    split = pd.Series(contrast.to_numpy()).str.rpartition(" - ")
    has_control = (split[1] == " - ").to_numpy()
    condition = np.where(has_control, split[0].to_numpy(), contrast.to_numpy())
    if "condition" in obs.columns:  # e.g. the pooled condition of a separate-mode contrast
        condition = obs["condition"].astype(str).to_numpy()
    control_label = np.where(has_control, split[2].to_numpy(), "vehicle")
    if not any(c in obs.columns for c in ("perturbagen_name", "perturbagen", "sm_name", "drug")):
        raise ValueError(f"{where}: obs has no perturbagen column; columns: {list(obs.columns)}")

    def ints(name: str) -> Any:
        values = pd.to_numeric(obs[name], errors="coerce") if name in obs.columns else [pd.NA] * n
        return pd.array(values, dtype="Int64")

    new_obs = pd.DataFrame(
        {
            "dataset": pd.Categorical([dataset] * n),
            "cell_context": pd.Categorical(
                _text(obs, "cell_context", "cell_type", default=context)
            ),
            "cell_name": pd.Categorical(_text(obs, "cell_name", "cell_type", default=context)),
            "perturbagen": pd.Categorical(
                _text(obs, "perturbagen_name", "perturbagen", "sm_name", "drug")
            ),
            "compound_id_source": pd.Categorical(
                _text(obs, "compound_id_source", "perturbagen", "pert_id")
            ),
            "compound_inchikey": pd.Categorical(
                _text(obs, "compound_inchikey", "inchikey", "inchi_key")
            ),
            "compound_parent_inchikey": pd.Categorical(_text(obs, "compound_parent_inchikey")),
            "pubchem_cid": ints("pubchem_cid"),
            "pert_dose_uM": pd.to_numeric(obs["pert_dose_uM"]).to_numpy(dtype=float),
            "pert_time_h": pd.to_numeric(obs["pert_time_h"]).to_numpy(dtype=float),
            "replicate": pd.Categorical(_text(obs, "replicate")),
            "control_label": pd.Categorical(control_label),
            "n_treated": ints("n_treated"),
            "n_control": ints("n_control"),
            "condition": pd.Categorical(condition),
        },
        index=pd.Index(contrast, name="contrast"),
    )
    if "id" in obs.columns:
        new_obs["sample_id"] = obs["id"].astype(str).to_numpy()
    var = src.var.copy()
    var.index = var.index.astype(str)
    if "symbol" not in var.columns:
        var["symbol"] = var.index.to_numpy()
    layers = {}
    for name in EFFECT_LAYERS:
        if name in src.layers:
            layers[name] = np.asarray(src.layers[name], dtype=np.float64)
        else:
            logger.warning("%s: layer %r missing; filled with NaN", where, name)
            layers[name] = np.full(src.shape, np.nan)
    if "stdev.scaled" in src.layers:
        layers["stdev.scaled"] = np.asarray(src.layers["stdev.scaled"], dtype=np.float64)
    eff = ad.AnnData(X=layers["logFC"].copy(), obs=new_obs, var=var, layers=layers)
    eff.uns["perturbridge"] = {
        "kind": "effects",
        "value_kind": "logFC",
        "replicate_mode": mode,
        "params": {"method": "imported from the original release"},
        "imported_from": {"file": path.name, "sha256": file_sha256(path)},
        "original_uns": strip_times(_plain_uns(dict(src.uns))),
    }
    return eff


def _plain_uns(uns: dict[str, Any]) -> dict[str, Any]:
    """Keep only the scalar/string entries of an upstream ``uns`` (others are dropped)."""
    out: dict[str, Any] = {}
    for k, v in uns.items():
        if isinstance(v, (str, int, float, bool)):
            out[str(k)] = v
    return out


def import_release(
    root: str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    zarr_layers: Sequence[str] = DEFAULT_ZARR_LAYERS,
    rows_per_shard: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """Import the release files under ``root`` into the store at ``store``.

    Conversions are cached in ``<store>/.cache`` by each file's SHA-256, so importing
    again after adding a dataset converts only the new files; an unchanged import
    writes nothing. Returns the store manifest.

    Examples
    --------
    >>> import_release("release/", "compendium")  # doctest: +SKIP
    """
    from ..progress import track

    store_path = Path(store).absolute()
    why = check_store_path(store_path)
    if why is not None:
        raise PlanError([why], where="import")
    files = find_release_files(root, datasets=datasets)
    if not files:
        raise StoreError(
            f"no release DE files (<dataset>/.../group_rep|separate_rep/.../*{_SUFFIX}) "
            f"under {root}"
        )
    mark_store(store_path)
    cache = TaskCache(store_path / ".cache")
    parts: dict[str, list[EffectsPart]] = {}
    inputs: dict[str, list[dict[str, Any]]] = {}
    keys: list[str] = []
    with cache.lock():
        sums = cache.checksums([f.path.absolute() for f in files])
        taken: dict[str, set[str]] = {}
        for f in track(files, description="import", enabled=progress):
            sha = sums[f.path.absolute()]
            key = digest(
                {"kind": "import", "version": __version__, "sha256": sha, "dataset": f.dataset,
                 "mode": f.mode, "context": f.context}
            )  # fmt: skip
            keys.append(key)
            out_dir = cache.root / "tasks" / "import" / key
            out = out_dir / "effects.h5ad"
            if not out.is_file():
                eff = convert_release_effects(
                    f.path, dataset=f.dataset, mode=f.mode, context=f.context
                )
                write_h5ad(eff, out)
            stems = taken.setdefault(f"{f.dataset}/{f.mode}", set())
            n = _n_obs(out)
            parts.setdefault(f.dataset, []).append(
                EffectsPart(
                    mode=f.mode,
                    context=f.context,
                    file_stem=safe_name(f.context, taken=stems),
                    path=out,
                    sha256=file_sha256(out),
                    n_contrasts=n,
                )
            )
            inputs.setdefault(f.dataset, []).append(
                {"path": str(f.path.absolute()), "sha256": sha, "mode": f.mode,
                 "context": f.context}
            )  # fmt: skip
        build_key = digest(
            {"import": sorted(keys), "layers": list(zarr_layers), "rows_per_shard": rows_per_shard,
             "version": __version__}
        )  # fmt: skip
        if store_is_current(store_path, build_key):
            from .store import read_manifest

            return read_manifest(store_path)
        dataset_parts = [
            DatasetPart(
                name=name,
                source="release_import",
                assay="",
                value_kind="logFC",
                samples=None,
                samples_sha256=None,
                ledger=None,
                effects=tuple(eps),
                info={"source": "release_import", "inputs": inputs[name]},
            )
            for name, eps in sorted(parts.items())
        ]
        manifest = write_store(
            store_path,
            dataset_parts,
            zarr_layers=zarr_layers,
            rows_per_shard=rows_per_shard,
            build_key=build_key,
            progress=progress,
        )
        write_json_atomic(store_path / "timings.json", {"import": str(Path(root).absolute())})
    return manifest


def _n_obs(path: Path) -> int:
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return len(read_elem(f["obs"]))
