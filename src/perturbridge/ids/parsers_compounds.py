"""Parsers of upstream compound reference files (``compounds`` + ``compound_synonyms``).

Registered in :mod:`perturbridge.ids.tables` on import. Each parser reads one public
file in its native layout and returns the two tables in their contract:

======================== ==============================================================
parser                   file
======================== ==============================================================
lincs_compoundinfo       CLUE ``compoundinfo_beta.txt`` (LINCS 2020) and its
                         signatureSearch conversion ``lincs_pert_info2.tsv.gz``
lincs_pertinfo           older LINCS perturbagen tables: GEO ``…pert_info….txt``, the
                         LINCS API ``pertinfo.tsv`` (``InChIKey=`` prefixes),
                         signatureSearch ``lincs_pert_info.tsv.gz``
repurposing_samples      Drug Repurposing Hub ``repurposing_samples_<date>.txt``
repurposing_drugs        Drug Repurposing Hub ``repurposing_drugs_<date>.txt`` (names)
pubchem_synonyms         PubChem FTP ``CID-Synonym-filtered`` (``CID<TAB>synonym``)
pubchem_smiles           PubChem FTP ``CID-SMILES`` (``CID<TAB>SMILES``)
pubchem_inchikey         PubChem FTP ``CID-InChI-Key`` (``CID<TAB>InChI<TAB>key``)
moabox_compounds         Novartis DRUG-seq MoA Box ``MoABox_compounds_metadata.txt``
user_compound_synonyms   a user table ``compound_synonyms*.csv``/``.tsv``: column
                         ``synonym`` and at least one of ``inchikey``, ``smiles``,
                         ``pubchem_cid``, ``name``
======================== ==============================================================

The PubChem extracts are headerless, as the PubChem FTP site ships them.

Common rules: values are stripped; ``""``, ``-666``, ``NA``, ``NaN``, ``NotFound``,
``None``, ``-`` are missing; an ``InChIKey=`` prefix is removed; PubChem CIDs become
``Int64``; every Broad id (``BRD-K12345678-001-01-1``) is a ``brd`` synonym, and so is
its 13-character compound prefix ``BRD-K12345678`` (the batch suffix names a salt form
or a lot of the same compound). LINCS rows that are not compounds (``pert_type`` other
than ``trt_cp``/``ctl_vehicle…``: shRNA, ORF, ligand proteins) are not compounds and are
skipped (a debug log line gives the count). Files gzipped or not are both read.

Long because it holds the nine compound parsers above (each short) with the value
cleaning they share; the identifier syntax is in :mod:`perturbridge.ids.compound_ids`.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from ..errors import FormatError
from ._frames import missing_as_none, none_where_not
from .compound_ids import brd_prefix, is_valid_cas
from .tables import TABLE_COLUMNS, RefParser, open_text, register_parser

__all__ = [
    "clean_ids",
    "parse_lincs_compoundinfo",
    "parse_lincs_pertinfo",
    "parse_moabox_compounds",
    "parse_pubchem_inchikey",
    "parse_pubchem_smiles",
    "parse_pubchem_synonyms",
    "parse_repurposing_drugs",
    "parse_repurposing_samples",
    "parse_user_compound_synonyms",
]

logger = logging.getLogger(__name__)

_MISSING: Final[frozenset[str]] = frozenset(
    {"", "-666", "-666.0", "na", "n/a", "#n/a", "nan", "none", "null", "notfound", "not found", "-"}
)
_INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")


def clean_ids(values: pd.Series) -> pd.Series:
    """Strip strings and turn the missing-value spellings into ``NA`` (object dtype)."""
    s = missing_as_none(values)
    s = s.map(lambda v: v.strip() if isinstance(v, str) else v)
    missing = np.fromiter(
        (v is None or (isinstance(v, str) and v.casefold() in _MISSING) for v in s),
        dtype=bool,
        count=len(s),
    )
    return none_where_not(s, ~missing)


def _inchikeys(values: pd.Series) -> pd.Series:
    s = clean_ids(values)
    return s.map(lambda v: v[9:] if isinstance(v, str) and v.startswith("InChIKey=") else v)


def _cids(values: pd.Series, *, path: Path, column: str, strict: bool = True) -> pd.Series:
    """PubChem CIDs as ``Int64`` (the first of a ``|``/``;``-joined list).

    ``0`` and negative numbers are placeholders for "none". Other values that are not
    integers raise :class:`FormatError` when ``strict``; otherwise they become missing
    with a warning (the metadata tables of LINCS carry a few stray ids there; the
    parsers keep those as ``alias`` synonyms, see :func:`_stray_cids`).
    """
    s = clean_ids(values).map(
        lambda v: re.split(r"[|;,]", str(v))[0].strip() if v is not None else None
    )
    raw = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & (raw.isna() | ((raw % 1) != 0).fillna(False))
    if bad.any():
        msg = (
            f"{path}: column {column!r} should hold PubChem CIDs (positive integers); "
            f"found {s[bad].unique()[:5].tolist()} in {int(bad.sum())} rows"
        )
        if strict:
            raise FormatError(msg)
        logger.warning("%s; those rows get no CID (the values are kept as aliases)", msg)
    num = raw.where((raw > 0) & ~bad)  # 0 and negative numbers are placeholders for "none"
    return num.astype("Int64")


def _stray_cids(values: pd.Series, cid: pd.Series) -> pd.Series:
    """The raw values of a CID column that were not CIDs (for ``alias`` synonyms)."""
    raw = clean_ids(values)
    numeric = pd.to_numeric(raw, errors="coerce").notna()
    return raw.where(cid.isna().to_numpy() & raw.notna().to_numpy() & ~numeric.to_numpy())


def _read_table(path: Path, *, sep: str = "\t", comment_prefix: str | None = None) -> pd.DataFrame:
    """A delimited table with a header, all strings, leading comment lines skipped."""
    skip = 0
    if comment_prefix is not None:
        with open_text(path) as fh:
            for line in fh:
                if not line.startswith(comment_prefix):
                    break
                skip += 1
    try:
        return pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            skiprows=skip,
            keep_default_na=False,
            na_values=[],
            encoding_errors="replace",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise FormatError(f"{path}: could not be read as a {sep!r}-separated table: {err}") from err


def _require(df: pd.DataFrame, path: Path, *groups: Iterable[str]) -> list[str]:
    """For each group of alternative column names, the first present (or raise)."""
    found: list[str] = []
    for group in groups:
        options = list(group)
        hit = next((c for c in options if c in df.columns), None)
        if hit is None:
            raise FormatError(
                f"{path}: expected a column {' or '.join(repr(o) for o in options)}; "
                f"found columns {list(df.columns)[:25]}"
            )
        found.append(hit)
    return found


def _compounds(
    source: str,
    ref_id: pd.Series,
    *,
    name: pd.Series | None = None,
    smiles: pd.Series | None = None,
    inchikey: pd.Series | None = None,
    pubchem_cid: pd.Series | None = None,
    cas: pd.Series | None = None,
    extra: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    n = len(ref_id)

    def col(s: pd.Series | None) -> np.ndarray:
        return np.full(n, None, dtype=object) if s is None else s.astype(object).to_numpy()

    out = pd.DataFrame(
        {
            "ref_source": np.full(n, source, dtype=object),
            "ref_id": ref_id.astype(object).to_numpy(),
            "name": col(name),
            "smiles": col(smiles),
            "inchikey": col(inchikey),
            "pubchem_cid": (
                pd.array([pd.NA] * n, dtype="Int64")
                if pubchem_cid is None
                else pubchem_cid.astype("Int64").array
            ),
            "cas": col(cas),
        }
    )
    for key, values in (extra or {}).items():
        out[key] = values.astype(object).to_numpy()
    return out


def _synonyms(source: str, parts: list[tuple[pd.Series, pd.Series, str]]) -> pd.DataFrame:
    """Long synonyms from ``(ref_id, synonym, kind)`` pieces; ``|``-joined lists split."""
    frames = []
    for ref_id, values, kind in parts:
        frame = pd.DataFrame({"ref_id": ref_id.to_numpy(), "synonym": clean_ids(values).to_numpy()})
        frame = frame[frame["synonym"].notna()]
        if kind in ("alias", "brd", "cas"):
            frame = frame.assign(synonym=frame["synonym"].str.split("|")).explode("synonym")
            frame["synonym"] = clean_ids(frame["synonym"])
            frame = frame[frame["synonym"].notna()]
        frame["kind"] = kind
        frames.append(frame)
    syn = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if syn.empty:
        return pd.DataFrame(columns=list(TABLE_COLUMNS["compound_synonyms"]), dtype=object)
    # every Broad id also gives its 13-character prefix (the compound without batch)
    brd = syn[syn["kind"] == "brd"]
    prefix = brd["synonym"].map(lambda v: brd_prefix(v) or v)
    syn = pd.concat(
        [syn, brd.assign(synonym=prefix.to_numpy())],
        ignore_index=True,
    )
    syn["ref_source"] = source
    syn = syn.drop_duplicates(["ref_id", "synonym", "kind"])
    return syn[list(TABLE_COLUMNS["compound_synonyms"])].reset_index(drop=True).astype(object)


def _brd_ids(values: pd.Series) -> pd.Series:
    return clean_ids(values).map(lambda v: v if v is not None and brd_prefix(v) else None)


def _first_per_id(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per id: the first non-missing value of every column."""
    if not df[key].duplicated().any():
        return df
    return df.groupby(key, sort=False, as_index=False).first()


# --------------------------------------------------------------------------------------
# LINCS


def parse_lincs_compoundinfo(path: Path) -> dict[str, pd.DataFrame]:
    """CLUE ``compoundinfo_beta`` (or the signatureSearch ``lincs_pert_info2`` table).

    One record per ``pert_id`` (``compoundinfo_beta`` repeats a compound once per
    target; the first non-missing value of each field is kept). Synonyms: the name
    (``cmap_name`` or ``pert_iname``), each ``|``-separated ``compound_aliases`` entry,
    ``pref_name``/``chembl_id``/``DrugBank_ID`` when present (aliases), the Broad id.
    """
    path = Path(path)
    df = _read_table(path)
    pid, name_col = _require(df, path, ["pert_id"], ["cmap_name", "pert_iname"])
    smi, ikey = _require(df, path, ["canonical_smiles"], ["inchi_key"])
    df = df.assign(**{c: clean_ids(df[c]) for c in df.columns})
    df = _first_per_id(df[df[pid].notna()], pid)
    cid_col = next((c for c in ("pubchem_cid", "PubChem_ID") if c in df.columns), None)
    cid = None
    if cid_col is not None:
        cid = _cids(df[cid_col], path=path, column=cid_col, strict=False)
        if cid_col == "pubchem_cid" and "PubChem_ID" in df.columns:
            cid = cid.fillna(_cids(df["PubChem_ID"], path=path, column="PubChem_ID", strict=False))
    source = "lincs_compoundinfo"
    compounds = _compounds(
        source,
        df[pid],
        name=df[name_col],
        smiles=df[smi],
        inchikey=_inchikeys(df[ikey]),
        pubchem_cid=cid,
    )
    parts = [(df[pid], df[name_col], "name"), (df[pid], _brd_ids(df[pid]), "brd")]
    for alias in ("compound_aliases", "pref_name", "chembl_id", "DrugBank_ID"):
        if alias in df.columns:
            parts.append((df[pid], df[alias], "alias"))
    if cid is not None:
        parts.append((df[pid], cid.astype("string").astype(object), "cid"))
        parts.append((df[pid], _stray_cids(df[cid_col], cid), "alias"))
    return {"compounds": compounds, "compound_synonyms": _synonyms(source, parts)}


_LINCS_COMPOUND_TYPES = re.compile(r"^(trt_cp|ctl_vehicle)")


def parse_lincs_pertinfo(path: Path) -> dict[str, pd.DataFrame]:
    """Older LINCS perturbagen tables (``pert_id``, ``pert_iname``, ``pert_type`` …).

    Only compounds (``pert_type`` ``trt_cp`` or ``ctl_vehicle…``; all rows when the
    column is absent). ``InChIKey=`` prefixes and ``-666`` placeholders are handled;
    ``inchi_string`` is kept as an extra ``inchi`` column.
    """
    path = Path(path)
    df = _read_table(path)
    pid, name_col = _require(df, path, ["pert_id"], ["pert_iname", "cmap_name"])
    df = df.assign(**{c: clean_ids(df[c]) for c in df.columns})
    if "pert_type" in df.columns:
        keep = df["pert_type"].isna() | df["pert_type"].fillna("").str.match(_LINCS_COMPOUND_TYPES)
        if (~keep).any():
            logger.debug("%s: %d rows that are not compounds skipped", path, int((~keep).sum()))
        df = df[keep]
    df = _first_per_id(df[df[pid].notna()], pid)
    smiles = df["canonical_smiles"] if "canonical_smiles" in df.columns else None
    ikey = _inchikeys(df["inchi_key"]) if "inchi_key" in df.columns else None
    cid = (
        _cids(df["pubchem_cid"], path=path, column="pubchem_cid", strict=False)
        if "pubchem_cid" in df.columns
        else None
    )
    extra = {"inchi": df["inchi_string"]} if "inchi_string" in df.columns else None
    source = "lincs_pertinfo"
    compounds = _compounds(
        source,
        df[pid],
        name=df[name_col],
        smiles=smiles,
        inchikey=ikey,
        pubchem_cid=cid,
        extra=extra,
    )
    parts = [(df[pid], df[name_col], "name"), (df[pid], _brd_ids(df[pid]), "brd")]
    if cid is not None:
        parts.append((df[pid], cid.astype("string").astype(object), "cid"))
        parts.append((df[pid], _stray_cids(df["pubchem_cid"], cid), "alias"))
    return {"compounds": compounds, "compound_synonyms": _synonyms(source, parts)}


# --------------------------------------------------------------------------------------
# Drug Repurposing Hub


def parse_repurposing_samples(path: Path) -> dict[str, pd.DataFrame]:
    """Repurposing Hub samples: one record per ``broad_id`` (a salt form and lot).

    Synonyms: ``pert_iname`` (name), ``vendor_name`` (vendor spelling, with salts),
    ``broad_id`` and its 13-character prefix and every ``|``-separated
    ``deprecated_broad_id`` (``brd``), ``pubchem_cid`` (``cid``).
    """
    path = Path(path)
    df = _read_table(path, comment_prefix="!")
    bid, name_col = _require(df, path, ["broad_id"], ["pert_iname"])
    df = df.assign(**{c: clean_ids(df[c]) for c in df.columns})
    df = _first_per_id(df[df[bid].notna()], bid)
    smi = next((c for c in ("smiles", "SMILES") if c in df.columns), None)
    ikey = next((c for c in ("InChIKey", "inchikey", "inchi_key") if c in df.columns), None)
    cid = (
        _cids(df["pubchem_cid"], path=path, column="pubchem_cid", strict=False)
        if "pubchem_cid" in df.columns
        else None
    )
    source = "repurposing_samples"
    compounds = _compounds(
        source,
        df[bid],
        name=df[name_col],
        smiles=df[smi] if smi else None,
        inchikey=_inchikeys(df[ikey]) if ikey else None,
        pubchem_cid=cid,
    )
    parts = [(df[bid], df[name_col], "name"), (df[bid], _brd_ids(df[bid]), "brd")]
    if "vendor_name" in df.columns:
        parts.append((df[bid], df["vendor_name"], "vendor_name"))
    if "deprecated_broad_id" in df.columns:
        parts.append((df[bid], df["deprecated_broad_id"], "brd"))
    if cid is not None:
        parts.append((df[bid], cid.astype("string").astype(object), "cid"))
        parts.append((df[bid], _stray_cids(df["pubchem_cid"], cid), "alias"))
    syn = _synonyms(source, parts)
    is_brd = np.fromiter((brd_prefix(v) is not None for v in syn["synonym"]), bool, len(syn))
    syn = syn[(syn["kind"] != "brd").to_numpy() | is_brd]
    return {"compounds": compounds, "compound_synonyms": syn.reset_index(drop=True)}


def parse_repurposing_drugs(path: Path) -> dict[str, pd.DataFrame]:
    """Repurposing Hub drugs: one record per ``pert_iname``, a name without structure.

    The resolver links such records to a structure through the same name in another
    table (``repurposing_samples``); alone they resolve nothing.
    """
    path = Path(path)
    df = _read_table(path, comment_prefix="!")
    (name_col,) = _require(df, path, ["pert_iname"])
    names = clean_ids(df[name_col])
    names = names[names.notna()].drop_duplicates()
    source = "repurposing_drugs"
    compounds = _compounds(source, names, name=names)
    return {
        "compounds": compounds,
        "compound_synonyms": _synonyms(source, [(names, names, "name")]),
    }


# --------------------------------------------------------------------------------------
# PubChem FTP extracts (headerless)


def _read_headerless(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=names,
            dtype=str,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_filter=False,
            encoding_errors="replace",
            on_bad_lines="error",
        )
    except (pd.errors.ParserError, EOFError, OSError) as err:
        raise FormatError(
            f"{path}: expected a headerless tab-separated PubChem extract with columns "
            f"{names}: {err}"
        ) from err
    first = df[names[0]].head(1).tolist()
    if first and not str(first[0]).isdigit():
        raise FormatError(
            f"{path}: the first column should be a PubChem CID; found {first[0]!r} "
            "(is this a file with a header?)"
        )
    return df


def parse_pubchem_synonyms(path: Path) -> dict[str, pd.DataFrame]:
    """PubChem ``CID-Synonym-filtered``: ``CID<TAB>synonym``, the preferred name first.

    One record per CID, named by its first synonym; CAS-number synonyms (check digit
    verified) are of kind ``cas`` and the first one fills ``cas``.
    """
    path = Path(path)
    df = _read_headerless(path, ["cid", "synonym"])
    df["synonym"] = clean_ids(df["synonym"])
    df = df[df["synonym"].notna()]
    cid = _cids(df["cid"], path=path, column="1 (CID)")
    is_cas = pd.Series(
        np.fromiter((is_valid_cas(v) for v in df["synonym"]), bool, len(df)), index=df.index
    )
    ref_id = cid.astype("string").astype(object)
    first = ~ref_id.duplicated()
    cas = pd.Series(df["synonym"].where(is_cas).to_numpy(), index=ref_id.to_numpy())
    cas = cas[cas.notna()]
    cas = cas[~cas.index.duplicated()]
    source = "pubchem_synonyms"
    uid = ref_id[first]
    compounds = _compounds(
        source,
        uid,
        name=df["synonym"][first.to_numpy()],
        pubchem_cid=cid[first],
        cas=pd.Series(uid.map(cas).to_numpy(), dtype=object),
    )
    syn = pd.DataFrame(
        {
            "ref_source": source,
            "ref_id": ref_id.to_numpy(),
            "synonym": df["synonym"].to_numpy(),
            "kind": np.where(is_cas.to_numpy(), "cas", "name"),
        }
    ).drop_duplicates(["ref_id", "synonym", "kind"])
    return {"compounds": compounds, "compound_synonyms": syn.reset_index(drop=True).astype(object)}


def parse_pubchem_smiles(path: Path) -> dict[str, pd.DataFrame]:
    """PubChem ``CID-SMILES``: ``CID<TAB>SMILES``; one record per CID."""
    path = Path(path)
    df = _read_headerless(path, ["cid", "smiles"]).drop_duplicates("cid")
    cid = _cids(df["cid"], path=path, column="1 (CID)")
    source = "pubchem_smiles"
    ref_id = cid.astype("string").astype(object)
    compounds = _compounds(source, ref_id, smiles=clean_ids(df["smiles"]), pubchem_cid=cid)
    return {"compounds": compounds, "compound_synonyms": _synonyms(source, [])}


def parse_pubchem_inchikey(path: Path) -> dict[str, pd.DataFrame]:
    """PubChem ``CID-InChI-Key``: ``CID<TAB>InChI<TAB>InChIKey``; InChI kept as ``inchi``."""
    path = Path(path)
    df = _read_headerless(path, ["cid", "inchi", "inchikey"]).drop_duplicates("cid")
    cid = _cids(df["cid"], path=path, column="1 (CID)")
    keys = _inchikeys(df["inchikey"])
    bad = keys.notna() & ~keys.fillna("").str.match(_INCHIKEY)
    if bad.any():
        raise FormatError(
            f"{path}: column 3 should hold InChIKeys; found {keys[bad].head(3).tolist()}"
        )
    source = "pubchem_inchikey"
    ref_id = cid.astype("string").astype(object)
    compounds = _compounds(
        source, ref_id, inchikey=keys, pubchem_cid=cid, extra={"inchi": clean_ids(df["inchi"])}
    )
    return {"compounds": compounds, "compound_synonyms": _synonyms(source, [])}


# --------------------------------------------------------------------------------------
# Novartis DRUG-seq MoA Box and user tables


def parse_moabox_compounds(path: Path) -> dict[str, pd.DataFrame]:
    """MoA Box compound metadata: ``cmpd_sample_id``, ``inchi_key``, ``smiles``, ``cas_number``.

    The table has no names: the sample id is an ``alias`` (the id the DRUG-seq
    metadata uses), each CAS number a ``cas`` synonym. Rows without structure
    (DMSO and a few others) are kept as records without structure.
    """
    path = Path(path)
    df = _read_table(path)
    (sid,) = _require(df, path, ["cmpd_sample_id"])
    df = df.assign(**{c: clean_ids(df[c]) for c in df.columns})
    df = _first_per_id(df[df[sid].notna()], sid)
    cas_lists = (
        df["cas_number"].map(lambda v: [c for c in re.split(r"[|;, ]+", v) if c] if v else [])
        if "cas_number" in df.columns
        else pd.Series([[]] * len(df), index=df.index)
    )
    source = "moabox_compounds"
    compounds = _compounds(
        source,
        df[sid],
        smiles=df["smiles"] if "smiles" in df.columns else None,
        inchikey=_inchikeys(df["inchi_key"]) if "inchi_key" in df.columns else None,
        cas=cas_lists.map(lambda v: v[0] if v else None),
    )
    cas_joined = cas_lists.map(lambda v: "|".join(v) if v else None)
    syn = _synonyms(source, [(df[sid], df[sid], "alias"), (df[sid], cas_joined, "cas")])
    return {"compounds": compounds, "compound_synonyms": syn}


_USER_TARGETS: Final[tuple[str, ...]] = ("inchikey", "smiles", "pubchem_cid", "name")


def parse_user_compound_synonyms(path: Path) -> dict[str, pd.DataFrame]:
    """A user table of extra synonyms (``.csv`` or ``.tsv``).

    Columns: ``synonym`` and at least one of ``inchikey``, ``smiles``, ``pubchem_cid``,
    ``name`` (case-insensitive). Each distinct target (the row's values of those
    columns) becomes one record of source ``user_compound_synonyms`` whose synonyms
    are the ``synonym`` values (kind ``user``). A target given only by ``name`` is an
    alias of that name: the resolver links it to the structure the name resolves to.

    Raises
    ------
    FormatError
        Without a ``synonym`` column or any target column, or when a row has a
        synonym but no target, or an InChIKey is malformed.
    """
    path = Path(path)
    sep = "," if ".csv" in path.name.lower() else "\t"
    df = _read_table(path, sep=sep, comment_prefix="#")
    df.columns = [c.strip().lower() for c in df.columns]
    if "synonym" not in df.columns:
        raise FormatError(f"{path}: expected a column 'synonym'; found {list(df.columns)}")
    targets = [c for c in _USER_TARGETS if c in df.columns]
    if not targets:
        raise FormatError(
            f"{path}: expected at least one of the columns {list(_USER_TARGETS)} next to "
            f"'synonym'; found {list(df.columns)}"
        )
    df = df.assign(**{c: clean_ids(df[c]) for c in ["synonym", *targets]})
    df = df[df["synonym"].notna()]
    no_target = df[targets].isna().all(axis=1)
    if no_target.any():
        raise FormatError(
            f"{path}: rows with a synonym but none of {targets}: first offending synonyms "
            f"{df.loc[no_target, 'synonym'].head(5).tolist()} (rows "
            f"{(df.index[no_target][:5] + 2).tolist()} counting the header as 1)"
        )
    if "inchikey" in df.columns:
        keys = _inchikeys(df["inchikey"])
        bad = keys.notna() & ~keys.fillna("").str.match(_INCHIKEY)
        if bad.any():
            raise FormatError(
                f"{path}: column 'inchikey' holds malformed InChIKeys: {keys[bad].head(5).tolist()}"
            )
        df["inchikey"] = keys
    target_key = df[targets].astype(str).agg("|".join, axis=1)
    ref_id = "user:" + pd.Series(pd.factorize(target_key)[0] + 1, index=df.index).astype(str)
    first = ~ref_id.duplicated()
    rec = df[first.to_numpy()]
    name = rec["name"] if "name" in rec.columns else rec["synonym"]
    cid = (
        _cids(rec["pubchem_cid"], path=path, column="pubchem_cid")
        if "pubchem_cid" in rec.columns
        else None
    )
    source = "user_compound_synonyms"
    compounds = _compounds(
        source,
        ref_id[first],
        name=name,
        smiles=rec["smiles"] if "smiles" in rec.columns else None,
        inchikey=rec["inchikey"] if "inchikey" in rec.columns else None,
        pubchem_cid=cid,
    )
    syn = _synonyms(source, [(ref_id, df["synonym"], "user")])
    return {"compounds": compounds, "compound_synonyms": syn}


# --------------------------------------------------------------------------------------
# registration


def _has(*columns: str) -> Callable[[str], bool]:
    def sniff(header: str) -> bool:
        fields = {f.strip().strip('"').lower() for f in re.split(r"[\t,]", header)}
        return all(c.lower() in fields for c in columns)

    return sniff


def _sniff_compoundinfo(header: str) -> bool:
    fields = {f.strip().strip('"') for f in header.split("\t")}
    return "pert_id" in fields and bool({"cmap_name", "compound_aliases"} & fields)


def _sniff_pertinfo(header: str) -> bool:
    fields = {f.strip().strip('"') for f in header.split("\t")}
    return {"pert_id", "pert_iname"} <= fields and "compound_aliases" not in fields


def _sniff_repurposing(column: str) -> Callable[[str], bool]:
    def sniff(header: str) -> bool:
        return header.startswith("!") or column in header.split("\t")

    return sniff


def _sniff_headerless(header: str) -> bool:
    return header.split("\t", 1)[0].strip().isdigit()


def _gz(*patterns: str) -> tuple[str, ...]:
    return tuple(p for pat in patterns for p in (pat, pat + ".gz"))


for _parser in (
    RefParser(
        name="lincs_compoundinfo",
        description="LINCS 2020 compound table (CLUE compoundinfo_beta; signatureSearch "
        "lincs_pert_info2): BRD ids, names, aliases, SMILES, InChIKeys",
        patterns=_gz("compoundinfo_beta.txt", "compoundinfo*.txt", "lincs_pert_info2.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_lincs_compoundinfo,
        sniff=_sniff_compoundinfo,
    ),
    RefParser(
        name="lincs_pertinfo",
        description="older LINCS perturbagen tables (GEO pert_info, LINCS API pertinfo, "
        "signatureSearch lincs_pert_info): compounds only",
        patterns=_gz("pertinfo.tsv", "lincs_pert_info.tsv", "*_pert_info*.txt"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_lincs_pertinfo,
        sniff=_sniff_pertinfo,
    ),
    RefParser(
        name="repurposing_samples",
        description="Drug Repurposing Hub samples: broad_id, name, vendor (salt) names, "
        "SMILES, InChIKey, CID",
        patterns=_gz("repurposing_samples_*.txt", "repurposing_samples*.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_repurposing_samples,
        sniff=_sniff_repurposing("broad_id"),
    ),
    RefParser(
        name="repurposing_drugs",
        description="Drug Repurposing Hub drugs: names (no structures)",
        patterns=_gz("repurposing_drugs_*.txt", "repurposing_drugs*.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_repurposing_drugs,
        sniff=_sniff_repurposing("pert_iname"),
    ),
    RefParser(
        name="pubchem_synonyms",
        description="PubChem FTP CID-Synonym-filtered (CID, synonym; headerless)",
        patterns=_gz("CID-Synonym-filtered", "CID-Synonym-filtered.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_pubchem_synonyms,
        sniff=_sniff_headerless,
    ),
    RefParser(
        name="pubchem_smiles",
        description="PubChem FTP CID-SMILES (CID, SMILES; headerless)",
        patterns=_gz("CID-SMILES", "CID-SMILES.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_pubchem_smiles,
        sniff=_sniff_headerless,
    ),
    RefParser(
        name="pubchem_inchikey",
        description="PubChem FTP CID-InChI-Key (CID, InChI, InChIKey; headerless)",
        patterns=_gz("CID-InChI-Key", "CID-InChI-Key.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_pubchem_inchikey,
        sniff=_sniff_headerless,
    ),
    RefParser(
        name="moabox_compounds",
        description="Novartis DRUG-seq MoA Box compound metadata (sample id, InChIKey, "
        "SMILES, CAS; no names)",
        patterns=_gz("MoABox_compounds_metadata.txt"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_moabox_compounds,
        sniff=_has("cmpd_sample_id"),
    ),
    RefParser(
        name="user_compound_synonyms",
        description="user table of extra compound synonyms: synonym + inchikey/smiles/"
        "pubchem_cid/name",
        patterns=_gz("compound_synonyms*.csv", "compound_synonyms*.tsv"),
        tables=("compounds", "compound_synonyms"),
        parse=parse_user_compound_synonyms,
        sniff=_has("synonym"),
    ),
):
    register_parser(_parser)
