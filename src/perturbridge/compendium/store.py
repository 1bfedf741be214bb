"""The compendium store on disk: effects files, consolidated arrays, catalog, manifest.

Layout::

    STORE/
      .perturbridge-store                      marks the folder as a store
      manifest.json                            provenance: inputs, checksums, versions,
                                               parameters, task keys, every file's SHA-256
      timings.json                             wall times of the last build that wrote
                                               the store (the only file that differs
                                               between two builds of the same plan)
      samples/<dataset>.h5ad                   Samples (rows sorted by cell context)
      effects/<dataset>/<mode>/<context>_de.h5ad   Effects, one file per context
      zarr/<mode>.zarr/<layer>                 contrasts × union genes, float32, NaN
                                               where a gene was not measured
                                               (Zarr format 3, one row per inner chunk,
                                               ``chunk_conditions`` rows per shard file;
                                               consolidated metadata)
      catalog/{datasets,samples,conditions,contrasts,genes,compounds,contexts,ledger}.parquet
      .cache/                                  the task cache (default place; see tasks)

Rows of ``zarr/<mode>.zarr`` are the contrasts of that mode ordered by dataset, context
(file) and row in the file; ``catalog/contrasts.parquet`` gives each contrast's
``zarr_row``. Columns are the union of all gene ids, sorted; ``catalog/genes.parquet``
gives each gene's ``zarr_col``. Everything is written in a fixed order with no
timestamps, so the same inputs give byte-identical files whichever executor ran the
tasks and however often the build was interrupted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_path, file_sha256
from ..progress import track
from ._common import (
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    STORE_MARKER,
    StoreError,
    safe_name,
    write_json_atomic,
)

__all__ = [
    "CATALOG_TABLES",
    "DatasetPart",
    "EffectsPart",
    "StoreLayout",
    "mark_store",
    "read_dataset_parts",
    "read_manifest",
    "store_is_current",
    "write_store",
]

logger = logging.getLogger(__name__)

#: The catalog tables (``STORE/catalog/<name>.parquet``).
CATALOG_TABLES: tuple[str, ...] = (
    "datasets",
    "samples",
    "conditions",
    "contrasts",
    "genes",
    "compounds",
    "contexts",
    "ledger",
)
_MANAGED_DIRS = ("samples", "effects", "zarr", "catalog")

#: Effects ``obs`` columns copied into ``catalog/contrasts.parquet`` (when present).
_CONTRAST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cell_context", "str"),
    ("cell_name", "str"),
    ("perturbagen", "str"),
    ("compound_id_source", "str"),
    ("compound_inchikey", "str"),
    ("compound_parent_inchikey", "str"),
    ("pubchem_cid", "Int64"),
    ("pert_dose_uM", "float"),
    ("pert_time_h", "float"),
    ("replicate", "str"),
    ("sample_id", "str"),
    ("control_label", "str"),
    ("n_treated", "Int64"),
    ("n_control", "Int64"),
    ("df_residual", "Int64"),
    ("n_genes_tested", "Int64"),
)


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside a store."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    def samples(self, dataset: str) -> Path:
        return self.root / "samples" / f"{dataset}.h5ad"

    def effects(self, dataset: str, mode: str, file_stem: str) -> Path:
        return self.root / "effects" / dataset / mode / f"{file_stem}_de.h5ad"

    def zarr(self, mode: str) -> Path:
        return self.root / "zarr" / f"{mode}.zarr"

    def catalog(self, table: str) -> Path:
        return self.root / "catalog" / f"{table}.parquet"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class EffectsPart:
    """One Effects file (dataset × mode × context) ready to go into the store."""

    mode: str
    context: str
    file_stem: str
    path: Path
    sha256: str
    n_contrasts: int
    ledger: Path | None = None


@dataclass(frozen=True)
class DatasetPart:
    """One dataset ready to go into the store: its Samples, Effects and ledgers.

    ``info`` is the dataset's provenance entry of the manifest (source, inputs and
    checksums, options, DE settings, task keys).
    """

    name: str
    source: str
    assay: str
    value_kind: str
    samples: Path | None
    samples_sha256: str | None
    ledger: Path | None
    effects: tuple[EffectsPart, ...]
    info: Mapping[str, Any] = field(default_factory=dict)


def mark_store(path: Path) -> None:
    """Create the store folder and its marker file (before anything else is written)."""
    path.mkdir(parents=True, exist_ok=True)
    marker = path / STORE_MARKER
    if not marker.is_file():
        write_json_atomic(marker, {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION})


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a store, or :class:`StoreError` saying what is wrong."""
    import json

    root = Path(path)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        if (root / STORE_MARKER).is_file():
            raise StoreError(
                f"{root} is an unfinished perturbridge store (no manifest.json): a build "
                "was interrupted; run the build again to finish it"
            )
        raise StoreError(f"{root} is not a perturbridge compendium store (no manifest.json)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError as err:
        raise StoreError(f"{manifest}: not valid JSON: {err}") from err
    if data.get("format") != STORE_FORMAT:
        raise StoreError(f"{manifest}: format is {data.get('format')!r}, expected {STORE_FORMAT!r}")
    if int(data.get("format_version", 0)) > STORE_FORMAT_VERSION:
        raise StoreError(
            f"{manifest}: store format version {data['format_version']} is newer than this "
            f"perturbridge ({__version__}) reads ({STORE_FORMAT_VERSION}); upgrade perturbridge"
        )
    return dict(data)


def store_is_current(path: Path, build_key: str) -> bool:
    """True when the store was written by a build with ``build_key`` and is complete."""
    try:
        manifest = read_manifest(path)
    except StoreError:
        return False
    if manifest.get("build_key") != build_key:
        return False
    for rel, rec in manifest.get("files", {}).items():
        p = path / rel
        if not p.is_file() or p.stat().st_size != rec["bytes"]:
            return False
    return all((path / rel).is_dir() for rel in manifest.get("zarr", {}).get("paths", []))


def read_dataset_parts(
    root: str | os.PathLike[str], names: Sequence[str], *, work: Path
) -> list[DatasetPart]:
    """The datasets ``names`` of an existing store as parts for :func:`write_store`.

    This is how a store is rewritten with other datasets joined to it (e.g. an import
    of release files into a built store) without touching these datasets: their
    Samples and Effects files are the store's own (placing a file on itself is a no-op),
    their manifest entry is kept as it is, and their ledger rows are taken from
    ``catalog/ledger.parquet`` (written to small Parquet files under ``work``). The
    context of each Effects file is the one its manifest entry records
    (``inputs[].file_stem``), else the single ``cell_context`` of its contrasts, else
    its file name.
    """
    layout = StoreLayout(Path(root).absolute())
    manifest = read_manifest(layout.root)
    entries = {str(d["name"]): d for d in manifest.get("datasets", [])}
    missing = [n for n in names if n not in entries]
    if missing:
        raise StoreError(f"{layout.root}: no dataset {missing} (found {sorted(entries)})")
    files: dict[str, Any] = manifest.get("files", {})
    table = pd.read_parquet(layout.catalog("datasets")).set_index("dataset")
    contrasts = pd.read_parquet(
        layout.catalog("contrasts"), columns=["effects_file", "cell_context"]
    )
    n_contexts = contrasts.groupby("effects_file")["cell_context"].nunique(dropna=False)
    first = contrasts.drop_duplicates("effects_file").set_index("effects_file")["cell_context"]
    one_context = first[n_contexts.reindex(first.index) == 1]
    ledger = pd.read_parquet(layout.catalog("ledger"))
    from ..ledger import LEDGER_COLUMNS

    def ledger_file(rows: pd.DataFrame, tag: str) -> Path | None:
        if rows.empty:
            return None
        frame = rows.loc[:, list(LEDGER_COLUMNS)].astype(str).reset_index(drop=True)
        path = work / f"{hashlib.sha256(tag.encode()).hexdigest()[:16]}.parquet"
        _write_parquet(frame, path)
        return path

    parts = []
    for name in names:
        info = {k: v for k, v in entries[name].items() if k != "name"}
        stems = {
            (str(i["mode"]), str(i["file_stem"])): str(i["context"])
            for i in info.get("inputs", [])
            if isinstance(i, Mapping) and {"mode", "context", "file_stem"} <= set(i)
        }
        led = ledger[ledger["dataset"].astype(str) == name]
        dataset_rows = led[led["mode"].isna()]
        effects: list[EffectsPart] = []
        seen: set[tuple[str, str]] = set()
        prefix = f"effects/{name}/"
        for rel in sorted(r for r in files if r.startswith(prefix) and r.endswith("_de.h5ad")):
            mode, fname = rel[len(prefix) :].split("/", 1)
            stem = fname[: -len("_de.h5ad")]
            ctx = stems.get((mode, stem))
            if ctx is None:
                found = one_context.get(rel)
                ctx = str(found) if found is not None and not pd.isna(found) else stem
            seen.add((mode, ctx))
            rows = led[(led["mode"].astype(str) == mode) & (led["context"].astype(str) == ctx)]
            obs, _ = _read_obs_var(layout.root / rel)
            effects.append(
                EffectsPart(
                    mode=mode,
                    context=ctx,
                    file_stem=stem,
                    path=layout.root / rel,
                    sha256=str(files[rel]["sha256"]),
                    n_contrasts=len(obs),
                    ledger=ledger_file(rows, f"{name}/{mode}/{ctx}"),
                )
            )
        # contexts with ledger rows but no contrasts (every condition dropped)
        rest = led[led["mode"].notna()]
        for key, rows in rest.groupby(["mode", "context"], sort=True, dropna=False):
            m, c = (str(k) for k in key)
            if (m, c) in seen:
                continue
            path = ledger_file(rows, f"{name}/{m}/{c}")
            if path is None:
                continue
            effects.append(EffectsPart(m, c, safe_name(c), path, "", 0, ledger=path))
        samples_rel = layout.rel(layout.samples(name))
        has_samples = samples_rel in files
        row = table.loc[name] if name in table.index else None
        parts.append(
            DatasetPart(
                name=name,
                source=str(info.get("source", row["source"] if row is not None else "")),
                assay=str(row["assay"]) if row is not None else str(info.get("assay", "")),
                value_kind=str(row["value_kind"])
                if row is not None
                else str(info.get("value_kind", "")),
                samples=layout.samples(name) if has_samples else None,
                samples_sha256=str(files[samples_rel]["sha256"]) if has_samples else None,
                ledger=ledger_file(dataset_rows, f"{name}//"),
                effects=tuple(effects),
                info=info,
            )
        )
    return parts


# --------------------------------------------------------------------------- writing


def _place(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` atomically: a hard link when possible, else a copy."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex}"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _to_arrow_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).where(s.notna(), None)
    return out


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(_to_arrow_frame(df), preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _read_obs_var(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f["obs"]), read_elem(f["var"])


def _column(obs: pd.DataFrame, name: str, kind: str) -> Any:
    n = len(obs)
    if name not in obs.columns:
        if kind == "float":
            return np.full(n, np.nan)
        if kind == "Int64":
            return pd.array([pd.NA] * n, dtype="Int64")
        return np.full(n, None, dtype=object)
    s = obs[name]
    if kind == "float":
        return s.to_numpy(dtype=float)
    if kind == "Int64":
        return s.astype("Int64").array
    vals = s.astype(object)
    return vals.where(s.notna(), None).map(lambda v: v if v is None else str(v)).to_numpy()


@dataclass
class _EffectsFile:
    dataset: str
    part: EffectsPart
    rel: str
    obs: pd.DataFrame
    var: pd.DataFrame


def _contrast_table(files: list[_EffectsFile]) -> pd.DataFrame:
    frames = []
    next_row: dict[str, int] = {}
    for ef in files:
        obs = ef.obs
        n = len(obs)
        mode = ef.part.mode
        start = next_row.get(mode, 0)
        next_row[mode] = start + n
        contrast = obs.index.astype(str)
        condition = (
            obs["condition"].astype(str).to_numpy()
            if "condition" in obs.columns
            else contrast.to_numpy()
        )
        data: dict[str, Any] = {
            "contrast_id": (ef.dataset + ":" + contrast).to_numpy(),
            "dataset": ef.dataset,
            "mode": mode,
            "contrast": contrast.to_numpy(),
            "condition_id": np.char.add(f"{ef.dataset}:", condition.astype(str)),
        }
        for name, kind in _CONTRAST_COLUMNS:
            data[name] = _column(obs, name, kind)
        data["effects_file"] = ef.rel
        data["file_row"] = np.arange(n, dtype=np.int64)
        data["zarr_row"] = np.arange(start, start + n, dtype=np.int64)
        frames.append(pd.DataFrame(data))
    if not frames:
        return pd.DataFrame(
            columns=["contrast_id", "dataset", "mode", "contrast", "condition_id"]
            + [c for c, _ in _CONTRAST_COLUMNS]
            + ["effects_file", "file_row", "zarr_row"]
        )
    return pd.concat(frames, ignore_index=True)


def compound_ids(frame: pd.DataFrame) -> np.ndarray:
    """The compound identity of each row: the parent InChIKey when known, else the
    InChIKey, else ``<dataset>:<upstream compound id or name>`` (an opaque id)."""
    parent = frame["compound_parent_inchikey"].astype(object)
    key = parent.where(parent.notna(), frame["compound_inchikey"].astype(object))
    local = frame["compound_id_source"].astype(object)
    local = local.where(local.notna(), frame["perturbagen"].astype(object))
    fallback = frame["dataset"].astype(str) + ":" + local.astype(str)
    return key.where(key.notna(), fallback).astype(str).to_numpy()


def _condition_table(contrasts: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "condition_id",
        "dataset",
        "cell_context",
        "cell_name",
        "perturbagen",
        "compound_id_source",
        "compound_inchikey",
        "compound_parent_inchikey",
        "pubchem_cid",
        "pert_dose_uM",
        "pert_time_h",
        "control_label",
    ]
    group = contrasts[contrasts["mode"] == "group"]
    sep = contrasts[contrasts["mode"] == "separate"]
    first = pd.concat([group, sep], ignore_index=True).drop_duplicates("condition_id", keep="first")
    out = first[cols].copy()
    out.insert(3, "compound_id", compound_ids(out))
    g = group.set_index("condition_id")
    out["n_treated"] = pd.array(
        g["n_treated"].reindex(out["condition_id"]).to_numpy(), dtype="Int64"
    )
    out["zarr_row_group"] = pd.array(
        g["zarr_row"].reindex(out["condition_id"]).to_numpy(), dtype="Int64"
    )
    n_sep = sep.groupby("condition_id", sort=False).size()
    out["n_separate"] = n_sep.reindex(out["condition_id"]).fillna(0).astype(np.int64).to_numpy()
    return out.sort_values(["dataset", "condition_id"], kind="stable").reset_index(drop=True)


def _gene_table(files: list[_EffectsFile], samples_var: dict[str, pd.DataFrame]) -> pd.DataFrame:
    symbol: dict[str, str] = {}
    measured: dict[str, set[str]] = {}
    sources: list[tuple[str, pd.DataFrame]] = [(ef.dataset, ef.var) for ef in files]
    sources += sorted(samples_var.items())
    for dataset, var in sources:
        ids = var.index.astype(str)
        syms = var["symbol"].astype(str).to_numpy() if "symbol" in var else ids.to_numpy()
        for g, s in zip(ids, syms, strict=True):
            symbol.setdefault(g, s)
            measured.setdefault(g, set()).add(dataset)
    genes = sorted(symbol)
    return pd.DataFrame(
        {
            "gene_id": genes,
            "symbol": [symbol[g] for g in genes],
            "zarr_col": np.arange(len(genes), dtype=np.int64),
            "n_datasets": np.array([len(measured[g]) for g in genes], dtype=np.int64),
            "datasets": [sorted(measured[g]) for g in genes],
        }
    )


def _compound_table(conditions: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "compound_id",
        "compound_inchikey",
        "compound_parent_inchikey",
        "pubchem_cid",
        "names",
        "upstream_ids",
        "datasets",
        "n_conditions",
    ]
    if conditions.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for cid, grp in conditions.groupby("compound_id", sort=True):

        def first(col: str, grp: pd.DataFrame = grp) -> Any:
            s = grp[col].dropna()
            return s.iloc[0] if len(s) else None

        rows.append(
            {
                "compound_id": cid,
                "compound_inchikey": first("compound_inchikey"),
                "compound_parent_inchikey": first("compound_parent_inchikey"),
                "pubchem_cid": first("pubchem_cid"),
                "names": sorted(grp["perturbagen"].dropna().astype(str).unique()),
                "upstream_ids": sorted(grp["compound_id_source"].dropna().astype(str).unique()),
                "datasets": sorted(grp["dataset"].astype(str).unique()),
                "n_conditions": len(grp),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    out["pubchem_cid"] = out["pubchem_cid"].astype("Int64")
    return out


def _context_table(conditions: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    keys = sorted(
        set(conditions["cell_context"].dropna().astype(str))
        | set(samples["cell_context"].dropna().astype(str) if len(samples) else [])
    )
    n_samples = (
        samples.groupby("cell_context", observed=True).size()
        if len(samples)
        else pd.Series(dtype=int)
    )
    rows = []
    for c in keys:
        cond = conditions[conditions["cell_context"] == c]
        smp = samples[samples["cell_context"] == c] if len(samples) else samples
        names = set(cond["cell_name"].dropna().astype(str))
        if len(smp):
            names |= set(smp["cell_name"].dropna().astype(str))
        rows.append(
            {
                "cell_context": c,
                "cell_names": sorted(names),
                "datasets": sorted(
                    set(cond["dataset"].astype(str))
                    | (set(smp["dataset"].astype(str)) if len(smp) else set())
                ),
                "n_samples": int(n_samples.get(c, 0)),
                "n_conditions": len(cond),
            }
        )
    return pd.DataFrame(
        rows, columns=["cell_context", "cell_names", "datasets", "n_samples", "n_conditions"]
    )


def _samples_table(parts: Sequence[DatasetPart], layout: StoreLayout) -> pd.DataFrame:
    from ..schema import SAMPLE_COLUMNS

    frames = []
    for part in parts:
        if part.samples is None:
            continue
        obs, _ = _read_obs_var(layout.samples(part.name))
        df = pd.DataFrame({"sample_id": obs.index.astype(str).to_numpy()})
        for col in SAMPLE_COLUMNS:
            kind = {"category": "str", "bool": "bool"}.get(col.kind, col.kind)
            if kind == "bool":
                df[col.name] = obs[col.name].to_numpy(dtype=bool)
            else:
                df[col.name] = _column(obs, col.name, kind)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["sample_id"] + [c.name for c in SAMPLE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _ledger_table(parts: Sequence[DatasetPart]) -> pd.DataFrame:
    frames = []

    def add(path: Path | None, dataset: str, mode: str | None, context: str | None) -> None:
        if path is None:
            return
        df = pd.read_parquet(path)
        df.insert(0, "context", context)
        df.insert(0, "mode", mode)
        df.insert(0, "dataset", dataset)
        frames.append(df)

    for part in parts:
        add(part.ledger, part.name, None, None)
        for ep in part.effects:
            add(ep.ledger, part.name, ep.mode, ep.context)
    cols = ["dataset", "mode", "context", "id", "stage", "status", "reason", "detail"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    return out[cols]


def _dataset_table(
    parts: Sequence[DatasetPart], contrasts: pd.DataFrame, conditions: pd.DataFrame
) -> pd.DataFrame:
    rows = []
    for part in parts:
        c = contrasts[contrasts["dataset"] == part.name]
        info = part.info
        rows.append(
            {
                "dataset": part.name,
                "source": part.source,
                "assay": part.assay,
                "value_kind": part.value_kind,
                "n_samples": info.get("n_samples"),
                "n_genes": info.get("n_genes"),
                "n_contexts": len({ep.context for ep in part.effects}),
                "n_conditions": int((conditions["dataset"] == part.name).sum()),
                "n_contrasts_group": int((c["mode"] == "group").sum()),
                "n_contrasts_separate": int((c["mode"] == "separate").sum()),
                "modes": sorted({ep.mode for ep in part.effects}),
                "de_method": info.get("de_method"),
            }
        )
    out = pd.DataFrame(rows)
    for col in ("n_samples", "n_genes"):
        out[col] = out[col].astype("Int64")
    return out


def _read_rows(ds: Any, a: int, b: int) -> np.ndarray:
    import h5py

    if isinstance(ds, h5py.Dataset):
        return np.asarray(ds[a:b], dtype=np.float32)
    from anndata.io import sparse_dataset

    return np.asarray(sparse_dataset(ds)[a:b].toarray(), dtype=np.float32)


def _write_zarr(
    dest: Path,
    files: list[_EffectsFile],
    gene_pos: pd.Series,
    *,
    mode: str,
    layers: Sequence[str],
    rows_per_shard: int,
    progress: bool,
) -> dict[str, Any]:
    import warnings

    import h5py
    import zarr

    from ._shards import ShardWriter, create_row_sharded

    n_rows = sum(len(ef.obs) for ef in files)
    n_genes = len(gene_pos)
    cr = max(1, rows_per_shard)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    root.attrs.update(
        {
            "perturbridge": {
                "kind": "compendium_effects",
                "mode": mode,
                "rows": "catalog/contrasts.parquet: zarr_row of the contrasts of this mode",
                "columns": "catalog/genes.parquet: zarr_col",
                "layers": list(layers),
                "layout": "row-sharded: one row per inner chunk, rows_per_shard rows a file",
                "version": __version__,
            }
        }
    )
    cols = [gene_pos.reindex(ef.var.index.astype(str)).to_numpy(dtype=np.int64) for ef in files]
    for layer in track(layers, description=f"zarr {mode}", enabled=progress):
        lay = create_row_sharded(root, layer, n_rows=n_rows, n_cols=n_genes, rows_per_shard=cr)
        cr = lay.rows_per_shard
        buf = np.full((cr, n_genes), np.nan, dtype=np.float32)
        filled = 0
        shard = 0
        with ShardWriter(lay) as writer:
            for ef, col in zip(files, cols, strict=True):
                n = len(ef.obs)
                with h5py.File(ef.part.path, "r") as f:
                    if layer not in f["layers"]:
                        raise StoreError(f"{ef.rel}: layer {layer!r} is missing")
                    ds = f["layers"][layer]
                    pos = 0
                    while pos < n:
                        take = min(cr - filled, n - pos)
                        buf[filled : filled + take][:, col] = _read_rows(ds, pos, pos + take)
                        filled += take
                        pos += take
                        if filled == cr:
                            writer.write(shard, buf)
                            shard += 1
                            buf.fill(np.nan)
                            filled = 0
            if filled:
                writer.write(shard, buf[:filled])
    with warnings.catch_warnings():
        # consolidated metadata is a zarr-python extension of format 3 (readers that do
        # not know it read the per-array zarr.json files instead)
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(tmp))
    summary = _tree_digest(tmp)
    summary.update({"rows": n_rows, "genes": n_genes, "layers": list(layers)})
    if dest.exists():
        trash = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex}"
        os.rename(dest, trash)
        os.rename(tmp, dest)
        shutil.rmtree(trash)
    else:
        os.rename(tmp, dest)
    return summary


def _tree_digest(root: Path) -> dict[str, Any]:
    """Files and one SHA-256 over the sorted (relative path, file SHA-256) of a folder."""
    h = hashlib.sha256()
    n = 0
    size = 0
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        h.update(f"{rel}\0{file_sha256(p)}\n".encode())
        n += 1
        size += p.stat().st_size
    return {"files": n, "bytes": size, "sha256": h.hexdigest()}


def _sweep(layout: StoreLayout, keep: set[str]) -> None:
    """Remove files of earlier builds that this build did not write, and temporaries."""
    root = layout.root
    zarr_dir = root / "zarr"
    if zarr_dir.is_dir():
        for p in sorted(zarr_dir.iterdir()):
            if layout.rel(p) not in keep:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    for d in ("samples", "effects", "catalog"):
        base = root / d
        if not base.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(base, topdown=False):
            for fn in filenames:
                p = Path(dirpath) / fn
                if layout.rel(p) not in keep:
                    p.unlink()
            if not os.listdir(dirpath):
                os.rmdir(dirpath)
    for p in root.iterdir():
        if p.is_file() and p.name.startswith(".") and p.name.endswith(".part"):
            p.unlink()


def write_store(
    root: str | os.PathLike[str],
    parts: Sequence[DatasetPart],
    *,
    zarr_layers: Sequence[str],
    rows_per_shard: int,
    build_key: str,
    manifest_extra: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write (or rewrite) a store from finished datasets; returns the manifest.

    Files are placed (hard links from the task cache when possible), the catalog and
    the consolidated arrays are derived from them, the manifest is written last, and
    files of an earlier build that are no longer part of the store are removed.
    """
    layout = StoreLayout(Path(root).absolute())
    mark_store(layout.root)
    parts = sorted(parts, key=lambda p: p.name)
    keep: set[str] = set()
    files_meta: dict[str, dict[str, Any]] = {}
    effects_files: list[_EffectsFile] = []
    samples_var: dict[str, pd.DataFrame] = {}
    for part in parts:
        if part.samples is not None:
            dst = layout.samples(part.name)
            _place(part.samples, dst)
            rel = layout.rel(dst)
            keep.add(rel)
            files_meta[rel] = {
                "sha256": part.samples_sha256 or file_sha256(dst),
                "bytes": dst.stat().st_size,
            }
            samples_var[part.name] = _read_obs_var(dst)[1]
        for ep in sorted(part.effects, key=lambda e: (e.mode, e.file_stem)):
            if ep.n_contrasts == 0:
                continue
            dst = layout.effects(part.name, ep.mode, ep.file_stem)
            _place(ep.path, dst)
            rel = layout.rel(dst)
            keep.add(rel)
            files_meta[rel] = {"sha256": ep.sha256, "bytes": dst.stat().st_size}
            obs, var = _read_obs_var(dst)
            effects_files.append(_EffectsFile(part.name, ep, rel, obs, var))
    # zarr rows: per mode, dataset then context order
    effects_files.sort(key=lambda ef: (ef.part.mode, ef.dataset, ef.part.file_stem))
    contrasts = _contrast_table(effects_files)
    contrasts = contrasts.sort_values(["mode", "zarr_row"], kind="stable").reset_index(drop=True)
    conditions = _condition_table(contrasts)
    genes = _gene_table(effects_files, samples_var)
    samples = _samples_table(parts, layout)
    tables = {
        "datasets": _dataset_table(parts, contrasts, conditions),
        "samples": samples,
        "conditions": conditions,
        "contrasts": contrasts,
        "genes": genes,
        "compounds": _compound_table(conditions),
        "contexts": _context_table(conditions, samples),
        "ledger": _ledger_table(parts),
    }
    for name in CATALOG_TABLES:
        path = layout.catalog(name)
        _write_parquet(tables[name], path)
        rel = layout.rel(path)
        keep.add(rel)
        files_meta[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    gene_pos = pd.Series(genes["zarr_col"].to_numpy(), index=genes["gene_id"].to_numpy())
    zarr_meta: dict[str, Any] = {"paths": [], "arrays": {}}
    for mode in sorted({ef.part.mode for ef in effects_files}):
        dest = layout.zarr(mode)
        summary = _write_zarr(
            dest,
            [ef for ef in effects_files if ef.part.mode == mode],
            gene_pos,
            mode=mode,
            layers=zarr_layers,
            rows_per_shard=rows_per_shard,
            progress=progress,
        )
        rel = layout.rel(dest)
        keep.add(rel)
        zarr_meta["paths"].append(rel)
        zarr_meta["arrays"][rel] = summary
    manifest: dict[str, Any] = {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "build_key": build_key,
        "versions": _versions(),
        "parameters": {"zarr_layers": list(zarr_layers), "rows_per_shard": rows_per_shard},
        "datasets": [dict(part.info, name=part.name) for part in parts],
        "counts": {
            "datasets": len(parts),
            "samples": len(samples),
            "conditions": len(conditions),
            "contrasts": {
                m: int((contrasts["mode"] == m).sum()) for m in sorted(set(contrasts["mode"]))
            },
            "genes": len(genes),
            "compounds": len(tables["compounds"]),
            "contexts": len(tables["contexts"]),
        },
        "files": dict(sorted(files_meta.items())),
        "zarr": zarr_meta,
        "timings": "timings.json (wall times; not part of the reproducible store)",
    }
    manifest.update(manifest_extra or {})
    write_json_atomic(layout.manifest, manifest)
    keep.add("manifest.json")
    _sweep(layout, keep)
    return manifest


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"perturbridge": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pandas", "anndata", "h5py", "zarr", "numcodecs", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


def store_digest(root: str | os.PathLike[str], *, exclude: Sequence[str] = ()) -> str:
    """One SHA-256 over every file of a store except the task cache and ``timings.json``.

    Two builds of the same plan give the same digest, whatever the executor and however
    often they were interrupted.
    """
    root = Path(root)
    skip = {".cache", "timings.json", *exclude}
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        h.update(f"{rel}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()
