"""The catalog tables of a store (``catalog/*.parquet``), derived from its files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from ...io import atomic_file, read_element
from ...ledger import LEDGER_COLUMNS
from ...schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, SAMPLE_COLUMNS, UNKNOWN
from .._common import StoreError, safe_name
from ._layout import DatasetPart, EffectsPart, StoreLayout, read_manifest

__all__ = [
    "CATALOG_BIOLOGY",
    "EffectsFile",
    "catalog_tables",
    "compound_ids",
    "count_rows",
    "read_dataset_parts",
    "read_frame",
    "write_parquet",
]

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


#: The biology columns of the ``samples``, ``contrasts`` and ``conditions`` tables (last,
#: in this order; ``unknown`` where no source says).
CATALOG_BIOLOGY: tuple[str, ...] = (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE)


def _context_biology(samples: pd.DataFrame) -> pd.DataFrame:
    """The biology of each (dataset, cell context) of the samples table: a column's value
    where the context's samples agree on it, else ``unknown``."""
    keys = ["dataset", "cell_context"]
    cols = list(CATALOG_BIOLOGY)
    if samples.empty or not set(cols) <= set(samples.columns):
        return pd.DataFrame(columns=keys + cols)
    uniq = samples[keys + cols].astype(str).drop_duplicates()
    n = uniq.groupby(keys, sort=False)[cols].nunique()
    first = uniq.groupby(keys, sort=False)[cols].first()
    out = first.where(n == 1, UNKNOWN)
    return out.reset_index()


def _with_biology(contrasts: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """``contrasts`` with the biology columns: the Effects file's own where it has them,
    else those of its (dataset, cell context) in the samples table, else ``unknown``."""
    ctx = _context_biology(samples)
    out = contrasts.copy()
    keys = pd.MultiIndex.from_frame(out[["dataset", "cell_context"]].astype(str))
    pos = pd.MultiIndex.from_frame(ctx[["dataset", "cell_context"]].astype(str)).get_indexer(keys)
    for col in CATALOG_BIOLOGY:
        own = out[col].astype(object) if col in out.columns else pd.Series(None, index=out.index)
        fill = np.full(len(out), UNKNOWN, dtype=object)
        if len(ctx):
            hit = pos >= 0
            fill[hit] = ctx[col].to_numpy(dtype=object)[pos[hit]]
        has = own.notna().to_numpy() & (own.astype(str) != UNKNOWN).to_numpy()
        out[col] = np.where(has, own.astype(str).to_numpy(), fill)
    return out[[c for c in out.columns if c not in CATALOG_BIOLOGY] + list(CATALOG_BIOLOGY)]


def _to_arrow_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).where(s.notna(), cast(Any, None))
    return out


def write_parquet(df: pd.DataFrame, path: Path) -> None:  # atomic_file: umask mode
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(_to_arrow_frame(df), preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_frame(path: Path, key: Literal["obs", "var"]) -> pd.DataFrame:
    """The ``obs`` or ``var`` data frame of an AnnData file (nothing else is read)."""
    import h5py

    with h5py.File(path, "r") as f:
        frame: pd.DataFrame = read_element(f[key])
    return frame


def count_rows(path: Path) -> int:
    """``n_obs`` of an AnnData file, from the length of its ``obs`` index."""
    import h5py

    with h5py.File(path, "r") as f:
        obs = f["obs"]
        return int(obs[str(obs.attrs["_index"])].shape[0])


def read_uns(path: Path, key: str) -> Any:
    """``uns[key]`` of an AnnData file, ``None`` when it has none."""
    import h5py

    with h5py.File(path, "r") as f:
        uns = f.get("uns")
        return read_element(uns[key]) if uns is not None and key in uns else None


#: The columns every ``fits`` row starts with (the Effects file it belongs to).
_FIT_KEYS: tuple[str, ...] = ("dataset", "mode", "effects_file", "fit")
#: Settings of a DE run kept in ``uns["ebayes"]`` and repeated on each of its fits.
_FIT_SETTINGS: tuple[str, ...] = ("method", "trend", "robust", "proportion", "winsor_tail_p")


def _fit_tables(files: list[EffectsFile], layout: StoreLayout) -> dict[str, pd.DataFrame]:
    """The ``fits`` table (the eBayes hyper-parameters of every fit: ``uns["ebayes_fits"]``
    with the run's settings of ``uns["ebayes"]``) and the ``quality_weights`` table (the
    sample weights of the fits that used them: ``uns["quality_weights"]``), one block of
    rows per Effects file; files without them (imports, precomputed signatures) add none."""
    fits: list[pd.DataFrame] = []
    weights: list[pd.DataFrame] = []
    for ef in files:
        path = layout.root / ef.rel
        keys = {"dataset": ef.dataset, "mode": ef.part.mode, "effects_file": ef.rel}
        table = read_uns(path, "ebayes_fits")
        if isinstance(table, pd.DataFrame) and not table.empty:
            run = read_uns(path, "ebayes") or {}
            frame = table.reset_index(names="fit")
            for name in _FIT_SETTINGS:
                if name in run and name not in frame.columns:
                    value = run[name]  # winsor_tail_p is a pair: kept as "0.05,0.1"
                    frame[name] = (
                        value if np.ndim(value) == 0 else ",".join(str(v) for v in np.ravel(value))
                    )
            fits.append(frame.assign(**keys))
        qc = read_uns(path, "quality_weights")
        if isinstance(qc, pd.DataFrame) and not qc.empty:
            weights.append(qc.reset_index(drop=True).assign(**keys))
    return {
        "fits": _keyed(fits, _FIT_KEYS),
        "quality_weights": _keyed(weights, _FIT_KEYS[:3]),
    }


def _keyed(frames: list[pd.DataFrame], keys: tuple[str, ...]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(keys))
    out = pd.concat(frames, ignore_index=True)
    return out[list(keys) + [c for c in out.columns if c not in keys]]


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
    vals = s.astype(object).where(s.notna(), cast(Any, None))
    return vals.map(lambda v: v if v is None else str(v)).to_numpy()


@dataclass
class EffectsFile:
    dataset: str
    part: EffectsPart
    rel: str
    obs: pd.DataFrame
    var: pd.DataFrame


def _contrast_table(files: list[EffectsFile]) -> pd.DataFrame:
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
        for name in CATALOG_BIOLOGY:  # an Effects file's own (e.g. imported), else None
            data[name] = _column(obs, name, "str")
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
    for col in CATALOG_BIOLOGY:
        out[col] = first[col].to_numpy() if col in first.columns else UNKNOWN
    return out.sort_values(["dataset", "condition_id"], kind="stable").reset_index(drop=True)


def _gene_table(files: list[EffectsFile], samples_var: dict[str, pd.DataFrame]) -> pd.DataFrame:
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
    frames = []
    for part in parts:
        if part.samples is None:
            continue
        obs = read_frame(layout.samples(part.name), "obs")
        df = pd.DataFrame({"sample_id": obs.index.astype(str).to_numpy()})
        for col in SAMPLE_COLUMNS:
            kind = {"category": "str", "bool": "bool"}.get(col.kind, col.kind)
            if kind == "bool":
                df[col.name] = obs[col.name].to_numpy(dtype=bool)
            else:
                df[col.name] = _column(obs, col.name, kind)
        for name in CATALOG_BIOLOGY:  # Samples written before the biology columns: unknown
            values = _column(obs, name, "str")
            df[name] = np.where(pd.isna(values), UNKNOWN, values)
        frames.append(df)
    if not frames:
        return pd.DataFrame(
            columns=["sample_id"] + [c.name for c in SAMPLE_COLUMNS] + list(CATALOG_BIOLOGY)
        )
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


def catalog_tables(
    parts: Sequence[DatasetPart],
    effects_files: list[EffectsFile],
    *,
    samples_var: dict[str, pd.DataFrame],
    layout: StoreLayout,
) -> dict[str, pd.DataFrame]:
    """Every catalog table of a store of ``parts``: ``effects_files`` in Zarr row order,
    ``samples_var`` the genes of each dataset's Samples, ``layout`` where they are."""
    samples = _samples_table(parts, layout)
    contrasts = _with_biology(_contrast_table(effects_files), samples)
    contrasts = contrasts.sort_values(["mode", "zarr_row"], kind="stable").reset_index(drop=True)
    conditions = _condition_table(contrasts)
    genes = _gene_table(effects_files, samples_var)
    return {
        "datasets": _dataset_table(parts, contrasts, conditions),
        "samples": samples,
        "conditions": conditions,
        "contrasts": contrasts,
        "genes": genes,
        "compounds": _compound_table(conditions),
        "contexts": _context_table(conditions, samples),
        "ledger": _ledger_table(parts),
        **_fit_tables(effects_files, layout),
    }


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

    def ledger_file(rows: pd.DataFrame, tag: str) -> Path | None:
        if rows.empty:
            return None
        frame = rows.loc[:, list(LEDGER_COLUMNS)].astype(str).reset_index(drop=True)
        path = work / f"{hashlib.sha256(tag.encode()).hexdigest()[:16]}.parquet"
        write_parquet(frame, path)
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
            effects.append(
                EffectsPart(
                    mode=mode,
                    context=ctx,
                    file_stem=stem,
                    path=layout.root / rel,
                    # the content's identity: the complete file the store file was
                    # written from (its store form changes with the arrays' layers)
                    sha256=str(files[rel].get("source_sha256", files[rel]["sha256"])),
                    n_contrasts=count_rows(layout.root / rel),
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
