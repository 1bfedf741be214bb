"""Reading the files of precomputed signatures (see :mod:`.signatures`): metadata per
signature, genes keyed by Entrez id, values of a block of signatures.

CMap level 5 GCTX (:class:`~perturbridge.io.GCTXFile`) and the signatureSearch HDF5
layout. Each reader returns a :class:`RawSignatures` (no values) and a function that
reads the values of some signatures; every input gene row and every caveat of a kept
signature goes to a ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..io import GCTXFile
from ..ledger import Ledger
from ..units import UnitError, parse_dose, parse_time

__all__ = ["GENE_STAGE", "READERS", "STAGE", "RawSignatures"]

STAGE = "signatures"
GENE_STAGE = "genes"

#: CMap's spellings of a missing metadata value.
_MISSING = frozenset({"", "-666", "-666.0", "nan", "na", "none"})
#: GCTX column metadata fields mapped to the standard columns (the first present is used).
_FIELDS: dict[str, tuple[str, ...]] = {
    "cell": ("cell_id", "cell_iname", "cell_line"),
    "compound_id": ("pert_id",),
    "name": ("pert_iname", "cmap_name", "pert_name"),
    "dose": ("pert_idose",),
    "dose_value": ("pert_dose",),
    "dose_unit": ("pert_dose_unit",),
    "time": ("pert_itime",),
    "time_value": ("pert_time",),
    "time_unit": ("pert_time_unit",),
    "n_treated": ("distil_nsample",),
}
_STANDARD = frozenset(
    {"dataset", "cell_context", "cell_name", "perturbagen", "compound_id_source",
     "compound_inchikey", "compound_parent_inchikey", "pubchem_cid", "pert_dose_uM",
     "pert_time_h", "replicate", "control_label", "n_treated", "n_control", "condition",
     "pert_type", "signature_id"}
)  # fmt: skip


#: reads the values of signatures ``cols`` × genes ``rows`` (positions) of a file
ValuesReader = Callable[[Path, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RawSignatures:
    """A signature file read: ids, metadata per signature, genes, and notes."""

    meta: pd.DataFrame  # standard columns + upstream fields, index = signature ids
    var: pd.DataFrame  # index = gene id (str), column symbol (+ entrez_id, probe_id)
    gene_rows: np.ndarray  # kept input gene positions, in var order
    genes: Ledger  # every input gene row
    notes: Ledger  # caveats of kept signatures (a dose that did not parse)
    fields: dict[str, str]  # standard field -> upstream metadata field


def _text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Stripped text per value; ``None`` where missing (CMap's ``-666`` included)."""
    s = pd.Series(values, dtype=object)
    out = np.full(len(s), None, dtype=object)
    for i, v in enumerate(s.to_numpy()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        t = str(v).strip()
        if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer():
            t = str(int(v))
        if t.lower() not in _MISSING:
            out[i] = t
    return out


def _micro(text: str) -> str:
    """CMap's micro sign in any of its encodings (``µ``, ``μ``, ``<b5>`` from R) as ``u``."""
    return re.sub(r"<b5>|\xb5|\u03bc", "u", text)


def _quantities(
    text: np.ndarray, *, what: Literal["dose", "time"], where: str
) -> tuple[np.ndarray, dict[str, str]]:
    """Doses in µM or times in h of combined strings (``"10 uM"``, ``"24 h"``); values
    that do not parse are NaN, returned with the reason so the ledger can say it."""
    out = np.full(len(text), np.nan)
    problems: dict[str, str] = {}
    for value in pd.unique(np.asarray([t for t in text if t is not None], dtype=object)):
        v = str(value)
        try:
            if what == "dose":
                num = float(parse_dose([_micro(v)], where=where)["pert_dose_uM"].iloc[0])
            else:
                num = float(parse_time([v], where=where)[0])
        except UnitError as err:
            problems[v] = str(err).splitlines()[0]
            continue
        out[np.asarray([t == v for t in text], dtype=bool)] = num
    return out, problems


def _gctx_meta(path: Path, f: GCTXFile) -> tuple[pd.DataFrame, dict[str, str], Ledger]:
    cm = f.col_meta()
    where = str(path)
    fields = {k: next((c for c in cands if c in cm.columns), "") for k, cands in _FIELDS.items()}
    fields = {k: v for k, v in fields.items() if v}
    n = len(cm)
    notes = Ledger()
    ids = cm.index.astype(str)

    from_ids: dict[str, np.ndarray] = {}
    if "cell" not in fields or ("name" not in fields and "compound_id" not in fields):
        from_ids = _parse_signature_ids(ids)
        if not from_ids:
            missing = [k for k in ("cell", "name") if k not in fields]
            raise ValueError(
                f"{where}: the column metadata lacks {missing} (CMap fields "
                f"{[_FIELDS[k] for k in missing]}); found {list(cm.columns)[:15]}, and the "
                f"signature ids (e.g. {list(ids[:2])}) are not CMap's "
                "'<plate>_<cell>_<time>:<pert_id>[:<dose>]'; a level 5 GCTX names each "
                "signature's cell line and compound"
            )
        for key in ("cell", "compound_id", "time"):
            if key not in fields and not (key == "time" and "time_value" in fields):
                fields[key] = f"signature id ({key})"

    def col(key: str) -> np.ndarray:
        if key in from_ids and fields.get(key, "").startswith("signature id"):
            return from_ids[key]
        return _text(cm[fields[key]]) if key in fields else np.full(n, None, dtype=object)

    def joined(value: str, unit: str) -> np.ndarray:
        v, u = col(value), col(unit)
        return np.array(
            [None if a is None else f"{a} {b or ''}".strip() for a, b in zip(v, u, strict=True)],
            dtype=object,
        )

    dose_text = col("dose") if "dose" in fields else joined("dose_value", "dose_unit")
    time_text = col("time") if "time" in fields else joined("time_value", "time_unit")
    dose, dose_bad = _quantities(dose_text, what="dose", where=where)
    time, time_bad = _quantities(time_text, what="time", where=where)
    for bad, text, what in ((dose_bad, dose_text, "dose"), (time_bad, time_text, "time")):
        for value, why in bad.items():
            rows = np.asarray([t == value for t in text], dtype=bool)
            notes.keep(
                ids[rows],
                stage=STAGE,
                reason=f"{what}_unparsed",
                detail=f"{what} {value!r} is not one quantity ({why}); left missing",
            )
    cell = col("cell")
    name = col("name")
    compound = col("compound_id")
    name = np.where(pd.isna(name.astype(object)), compound, name)
    n_treated = (
        pd.array(
            np.asarray(pd.to_numeric(cm[fields["n_treated"]], errors="coerce"), dtype=float),
            dtype="Int64",
        )
        if "n_treated" in fields
        else pd.array([pd.NA] * n, dtype="Int64")
    )
    meta = pd.DataFrame(
        {
            "cell_name": cell,
            "perturbagen": name,
            "compound_id_source": compound,
            "pert_type": _text(cm["pert_type"]) if "pert_type" in cm else None,
            "pert_dose_uM": dose,
            "pert_time_h": time,
            "n_treated": n_treated,
        },
        index=ids,
    )
    used = set(fields.values()) | {"pert_type"}  # (a 'signature id' field is no column)
    for c in cm.columns:
        if c not in used:
            meta[f"upstream_{c}" if c in _STANDARD else c] = cm[c].to_numpy()
    return meta, fields, notes


#: CMap's signature id: ``<plate>_<cell>_<time>[_<more>]:<pert_id>[:<dose>]``
_SIG_ID = re.compile(
    r"^[^:_]+_(?P<cell>[^:_]+)_(?P<time>\d+(?:\.\d+)?)H(?:_[^:]*)?:(?P<pert>[^:]+)(?::[^:]*)?$",
    re.IGNORECASE,
)


def _parse_signature_ids(ids: pd.Index) -> dict[str, np.ndarray]:
    """Cell, time and compound id of CMap signature ids, for a file whose column
    metadata lacks them; empty when an id does not follow the pattern."""
    found = [_SIG_ID.match(str(i)) for i in ids]
    if not found or not all(found):
        return {}
    return {
        "cell": np.array([m["cell"] for m in found if m], dtype=object),
        "time": np.array([f"{m['time']} h" for m in found if m], dtype=object),
        "compound_id": np.array([m["pert"] for m in found if m], dtype=object),
    }


def _entrez_var(
    row_ids: pd.Index, row_meta: pd.DataFrame, *, where: str
) -> tuple[pd.DataFrame, np.ndarray, Ledger]:
    """Genes keyed by Entrez id (``pr_gene_id``, or numeric row ids); rows without one,
    or repeating one, are dropped to the ledger (a signature has one value per gene)."""
    ledger = Ledger()
    ids = row_ids.astype(str)
    if "pr_gene_id" in row_meta.columns:
        entrez = _text(row_meta["pr_gene_id"])
        probe: np.ndarray | None = ids.to_numpy(dtype=object)
    elif all(i.isdigit() for i in ids):
        entrez = ids.to_numpy(dtype=object)
        probe = None
    else:
        raise ValueError(
            f"{where}: the genes need Entrez ids: row metadata 'pr_gene_id', or row ids that "
            f"are Entrez ids; found row ids {list(ids[:3])} and fields {list(row_meta.columns)}"
        )
    bad = np.array([e is None or not str(e).isdigit() for e in entrez], dtype=bool)
    ledger.drop(ids[bad], stage=GENE_STAGE, reason="no_entrez_id",
                detail="no single Entrez id for this row")  # fmt: skip
    dup = pd.Series(entrez).duplicated().to_numpy() & ~bad
    first = {e: i for i, e in reversed(list(enumerate(entrez)))}
    ledger.drop(
        ids[dup],
        stage=GENE_STAGE,
        reason="duplicate_gene",
        detail=[f"Entrez {e} already taken by row {ids[first[e]]}" for e in entrez[dup]],
    )
    keep = np.flatnonzero(~bad & ~dup)
    ledger.keep(ids[keep], stage=GENE_STAGE, detail=[f"gene {e}" for e in entrez[keep]])
    sym = (
        _text(row_meta["pr_gene_symbol"])[keep]
        if "pr_gene_symbol" in row_meta.columns
        else entrez[keep]
    )
    sym = np.where(pd.isna(sym.astype(object)), entrez[keep], sym)
    var = pd.DataFrame(
        {"symbol": sym.astype(str), "entrez_id": entrez[keep].astype(str)},
        index=pd.Index(entrez[keep].astype(str), name="gene_id"),
    )
    if probe is not None:
        var["probe_id"] = probe[keep].astype(str)
    return var, keep, ledger


def _read_gctx(path: Path) -> RawSignatures:
    with GCTXFile(path) as f:
        meta, fields, notes = _gctx_meta(path, f)
        var, rows, genes = _entrez_var(f.row_ids, f.row_meta(), where=str(path))
    return RawSignatures(meta, var, rows, genes, notes, fields)


def _gctx_values(path: Path, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Signatures ``cols`` (positions) × genes ``rows``: ``(len(cols), len(rows))``."""
    with GCTXFile(path) as f:
        return np.asarray(f.read(row_idx=rows, col_idx=cols), dtype=np.float64).T


def _h5_strings(ds: Any, *, where: str, name: str) -> np.ndarray:
    raw = np.asarray(ds[()]).ravel()
    try:
        return np.array(
            [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw], dtype=object
        )
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: {name!r} is not UTF-8 text ({err})") from err


def _open_h5(path: Path) -> Any:
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"signatureSearch HDF5 file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    missing = [k for k in ("assay", "colnames", "rownames") if k not in f]
    if missing:
        found = list(f.keys())
        f.close()
        raise ValueError(
            f"{path}: not the signatureSearch layout: no dataset(s) {missing} (found "
            f"{found}); expected 'assay' (signatures × genes), 'colnames' and 'rownames'"
        )
    return f


def _read_sigsearch(path: Path) -> RawSignatures:
    where = str(path)
    with _open_h5(path) as f:
        cols = _h5_strings(f["colnames"], where=where, name="colnames")
        genes = _h5_strings(f["rownames"], where=where, name="rownames")
        shape = tuple(f["assay"].shape)
    if shape != (len(cols), len(genes)):
        raise ValueError(
            f"{where}: 'assay' has shape {shape}, expected (colnames, rownames) = "
            f"({len(cols)}, {len(genes)}) as h5py reads R's column-major layout"
        )
    dup = pd.Index(cols)[pd.Index(cols).duplicated()]
    if len(dup):
        raise ValueError(
            f"{where}: 'colnames' repeats signature names, e.g. {list(dict.fromkeys(dup))[:3]}"
        )
    parts = [c.split("__") for c in cols]
    bad = [c for c, p in zip(cols, parts, strict=True) if len(p) != 3 or not all(p)]
    if bad:
        raise ValueError(
            f"{where}: {len(bad)} 'colnames' are not '<drug>__<cell>__<pert_type>', e.g. {bad[:3]}"
        )
    n = len(cols)
    meta = pd.DataFrame(
        {
            "cell_name": [p[1] for p in parts],
            "perturbagen": [p[0] for p in parts],
            "compound_id_source": [None] * n,
            "pert_type": [p[2] for p in parts],
            "pert_dose_uM": np.full(n, np.nan),
            "pert_time_h": np.full(n, np.nan),
            "n_treated": pd.array([pd.NA] * n, dtype="Int64"),
        },
        index=pd.Index(cols),
    )
    var, rows, gene_ledger = _entrez_var(pd.Index(genes), pd.DataFrame(index=genes), where=where)
    fields = {"name": "colnames[0]", "cell": "colnames[1]", "pert_type": "colnames[2]"}
    return RawSignatures(meta, var, rows, gene_ledger, Ledger(), fields)


def _sigsearch_values(path: Path, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    with _open_h5(path) as f:
        order = np.argsort(cols)
        block = np.asarray(f["assay"][np.sort(cols), :], dtype=np.float64)
    out = np.empty_like(block)
    out[order] = block
    return out[:, rows]


READERS: dict[str, tuple[Callable[[Path], RawSignatures], ValuesReader]] = {
    "gctx": (_read_gctx, _gctx_values),
    "signaturesearch": (_read_sigsearch, _sigsearch_values),
}
