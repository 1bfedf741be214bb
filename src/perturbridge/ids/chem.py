"""Structure standardization with RDKit: InChIKey, canonical SMILES and the parent.

For one SMILES (or InChI) we compute

``inchikey``
    the standard InChIKey of the structure as given (salts and solvents included);
``canonical_smiles``
    RDKit's canonical isomeric SMILES of the structure as given;
``parent_smiles``, ``parent_inchikey``
    the **parent**: explicit hydrogens removed; alkali and alkaline-earth metals
    (Li, Na, K, Mg, Ca, …, and Al) disconnected from N/O when no other metal is present
    (``MetalDisconnector``; platinum or zinc complexes stay whole); functional groups
    normalized and the molecule reionized (``Normalize``, ``Reionize``); known
    counter-ion and solvent fragments removed (``FragmentRemover`` with this module's
    list: halides, metal ions, water, ammonia, mineral acids, sulfonic acids, acetic,
    trifluoroacetic, oxalic, maleic/fumaric, succinic, malic, tartaric, citric, lactic,
    benzoic and pamoic acids, tromethamine, meglumine, olamine, erbumine, choline and
    common solvents; nothing is removed when every fragment is on the list); then the largest
    organic fragment (``LargestFragmentChooser(preferOrganic=True)``: counter-ions,
    water and solvents go; when no fragment has a carbon the structure is kept whole),
    then charges neutralized where a neutral form exists
    (``Uncharger(canonicalOrder=True)``). Stereo and isotopes are kept;
``connectivity``
    the first 14 characters of ``parent_inchikey`` (the InChI connectivity block: the
    same for stereo isomers, isotopologues and protonation states);
``tautomer_connectivity``
    the connectivity block of the parent's *non-standard* InChIKey computed with the
    InChI options ``/KET /15T`` (keto-enol and 1,5-tautomerism): the same for
    tautomers such as the keto and enol forms of meloxicam or doxycycline, which
    standard InChI keeps apart. The resolver groups records by this block;
``error``
    why the input could not be standardized, or missing. One bad input never raises.

Two misdrawings of N-nitroso groups found in LINCS and Repurposing Hub SMILES of
nitrosoureas (lomustine, streptozotocin), ``[O-][N+]N`` with a radical nitrogen and
``[O-][NH2+]N``, are repaired to ``O=NN`` in the parent.

A structure with one fragment, no formal charge and no metal atom is its own parent;
then the standardization steps are skipped (they would not change the InChIKey), which
makes typical libraries about three times faster.

RDKit's log messages (valence warnings, InChI warnings) are blocked while these
functions run and restored afterwards; importing this module changes no logging.

Examples
--------
>>> imatinib_mesylate = "CS(=O)(=O)O.Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
>>> row = standardize_structure(imatinib_mesylate)
>>> row["parent_inchikey"], row["connectivity"]
('KTUFNOKKBVMGRW-UHFFFAOYSA-N', 'KTUFNOKKBVMGRW')
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, Final

import numpy as np
import pandas as pd

from ..progress import track
from ._frames import none_where_not

__all__ = [
    "INCHIKEY_PATTERN",
    "STRUCTURE_COLUMNS",
    "connectivity_block",
    "is_inchikey",
    "quiet_rdkit",
    "standardize_smiles_many",
    "standardize_structure",
]

logger = logging.getLogger(__name__)

#: Columns of :func:`standardize_smiles_many` (and of the ``compound_structures`` table).
STRUCTURE_COLUMNS: Final[tuple[str, ...]] = (
    "smiles",
    "inchikey",
    "canonical_smiles",
    "parent_smiles",
    "parent_inchikey",
    "connectivity",
    "tautomer_connectivity",
    "error",
)

#: A standard InChIKey (``InChIKey=`` prefix allowed).
INCHIKEY_PATTERN: Final[re.Pattern[str]] = re.compile(
    r"^(?:InChIKey=)?([A-Z]{14}-[A-Z]{8}[SN][A-Z]-[A-Z])$"
)

# atoms that never make a structure need the salt/metal standardization
_NONMETALS: Final[frozenset[int]] = frozenset(
    {1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 52, 53}
)
# alkali and alkaline-earth metals (and aluminium): counter-ions, disconnected from N/O
_SALT_METALS: Final[frozenset[int]] = frozenset({3, 11, 12, 13, 19, 20, 37, 38, 55, 56})


# counter-ions and solvents removed from a multi-fragment structure (whole-fragment
# matches; nothing is removed when every fragment matches, and the last one is kept)
_SALT_FRAGMENTS: Final[str] = "\n".join(
    f"{name}\t{smarts}"
    for name, smarts in (
        ("hydrogen", "[H]"),
        ("halide", "[F,Cl,Br,I]"),
        ("metal ion", "[Li,Na,K,Rb,Cs,Mg,Ca,Sr,Ba,Al,Zn]"),
        ("ammonia", "[#7;X0,X1,X2,X3,X4;!$(*~*)]"),
        ("water", "[#8;!$(*~*)]"),
        ("sulfuric acid", "[#8]S(~[#8])(~[#8])~[#8]"),
        ("phosphoric acid", "[#8]P(~[#8])(~[#8])~[#8]"),
        ("nitric acid", "[#8][#7](~[#8])~[#8]"),
        ("perchloric acid", "[#8]Cl(~[#8])(~[#8])~[#8]"),
        ("carbonic acid", "[#8]C(~[#8])~[#8]"),
        ("methanesulfonic acid", "[CH3]S(~[#8])(~[#8])~[#8]"),
        ("ethanesulfonic acid", "[CH3][CH2]S(~[#8])(~[#8])~[#8]"),
        ("isethionic acid", "[#8][CH2][CH2]S(~[#8])(~[#8])~[#8]"),
        ("benzenesulfonic acid", "c1ccc(cc1)S(~[#8])(~[#8])~[#8]"),
        ("toluenesulfonic acid", "[CH3]c1ccc(cc1)S(~[#8])(~[#8])~[#8]"),
        ("camphorsulfonic acid", "CC1(C)C2CCC1(CS(~[#8])(~[#8])~[#8])C(=O)C2"),
        ("acetic acid", "[CH3]C(~[#8])~[#8]"),
        ("trifluoroacetic acid", "FC(F)(F)C(~[#8])~[#8]"),
        ("formic acid", "[CH1](~[#8])~[#8]"),
        ("oxalic acid", "[#8]~C(~[#8])C(~[#8])~[#8]"),
        ("maleic or fumaric acid", "[#8]~C(~[#8])[CH]=[CH]C(~[#8])~[#8]"),
        ("succinic acid", "[#8]~C(~[#8])[CH2][CH2]C(~[#8])~[#8]"),
        ("malic acid", "[#8]~C(~[#8])[CH2][CH]([OH])C(~[#8])~[#8]"),
        ("tartaric acid", "[#8]~C(~[#8])[CH]([OH])[CH]([OH])C(~[#8])~[#8]"),
        ("citric acid", "[#8]~C(~[#8])[CH2]C([OH])([CH2]C(~[#8])~[#8])C(~[#8])~[#8]"),
        ("lactic acid", "[CH3][CH]([OH])C(~[#8])~[#8]"),
        ("benzoic acid", "c1ccc(cc1)C(~[#8])~[#8]"),
        (
            "pamoic acid",
            "[#8]~C(~[#8])c1cc2ccccc2c(Cc2c([OH])c(cc3ccccc23)C(~[#8])~[#8])c1[OH]",
        ),
        ("tromethamine", "[NX3,NX4][CX4](CO)(CO)CO"),
        ("meglumine", "C[NX3,NX4]CC(O)C(O)C(O)C(O)CO"),
        ("ethanolamine", "[NX3H2,NX4H3][CH2][CH2][OH]"),
        ("diethanolamine", "[OH][CH2][CH2][NX3H1,NX4H2][CH2][CH2][OH]"),
        ("tert-butylamine", "[CH3]C([CH3])([CH3])[NX3H2,NX4H3]"),
        ("choline", "C[N+](C)(C)[CH2][CH2][OH]"),
        ("dimethyl sulfoxide", "[CH3]S(=O)[CH3]"),
        ("methanol", "[CH3][OH]"),
        ("ethanol", "[CH3][CH2][OH]"),
        ("isopropanol", "[CH3][CH]([CH3])[OH]"),
        ("acetone", "[CH3]C(=O)[CH3]"),
        ("acetonitrile", "[CH3]C#N"),
        ("dimethylformamide", "[CH3]N([CH3])[CH]=O"),
        ("propylene glycol", "[CH3][CH]([OH])[CH2][OH]"),
        ("ethyl acetate", "[CH3][CH2]OC(=O)[CH3]"),
        ("dichloromethane", "Cl[CH2]Cl"),
        ("chloroform", "Cl[CH](Cl)Cl"),
        ("dioxane", "C1COCCO1"),
        ("tetrahydrofuran", "C1CCOC1"),
    )
)


def is_inchikey(value: object) -> bool:
    """Whether ``value`` is a standard InChIKey (an ``InChIKey=`` prefix is allowed)."""
    return isinstance(value, str) and INCHIKEY_PATTERN.match(value.strip()) is not None


def connectivity_block(inchikey: str) -> str:
    """The first (connectivity) block of an InChIKey.

    Examples
    --------
    >>> connectivity_block("InChIKey=UREBDLICKHMUKA-CXSFZGCWSA-N")
    'UREBDLICKHMUKA'
    """
    m = INCHIKEY_PATTERN.match(inchikey.strip())
    if m is None:
        raise ValueError(
            f"expected a standard InChIKey (XXXXXXXXXXXXXX-XXXXXXXXXX-X), found {inchikey!r}"
        )
    return m.group(1)[:14]


@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Block RDKit's log messages inside the ``with`` block (restored on exit)."""
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


@cache
def _tools() -> tuple[Any, Any, Any, Any]:
    from rdkit.Chem.MolStandardize import rdMolStandardize

    return (
        rdMolStandardize.LargestFragmentChooser(preferOrganic=True),
        rdMolStandardize.Uncharger(canonicalOrder=True),
        rdMolStandardize.MetalDisconnector(),
        rdMolStandardize.FragmentRemoverFromData(_SALT_FRAGMENTS, True, True),
    )


def _parent(mol: Any) -> Any:
    """Cleanup, largest organic fragment, neutralized (see the module docstring)."""
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    chooser, uncharger, disconnector, remover = _tools()
    m = _repair_nitroso(Chem.RemoveHs(mol))
    nums = {a.GetAtomicNum() for a in m.GetAtoms()}
    if nums & _SALT_METALS and not nums - _NONMETALS - _SALT_METALS:
        m = disconnector.Disconnect(m)
    m = rdMolStandardize.Reionize(rdMolStandardize.Normalize(m))
    chosen = chooser.choose(remover.remove(m))
    if not any(a.GetAtomicNum() == 6 for a in chosen.GetAtoms()):
        chosen = m  # inorganic (cisplatin, salts of inorganic ions): keep it whole
    return uncharger.uncharge(chosen)


@cache
def _nitroso_pattern() -> Any:
    from rdkit import Chem

    # [O-]-[N+]-N with the N+ bonded to nothing else by single bonds only: a nitroso
    # group O=N-N drawn charge-separated without its double bond (radical [N+], or
    # [NH2+]); LINCS and Repurposing Hub SMILES of nitrosoureas carry both.
    return Chem.MolFromSmarts("[O-;D1]-[N+;D2;!$(*=*);!$(*#*)]-[#7]")


def _repair_nitroso(mol: Any) -> Any:
    """Turn misdrawn N-nitroso groups (``[O-][N+]N``, ``[O-][NH2+]N``) into ``O=NN``."""
    from rdkit import Chem

    matches = mol.GetSubstructMatches(_nitroso_pattern())
    if not matches:
        return mol
    rw = Chem.RWMol(mol)
    for o, n, _ in matches:
        rw.GetBondBetweenAtoms(o, n).SetBondType(Chem.BondType.DOUBLE)
        for idx in (o, n):
            atom = rw.GetAtomWithIdx(idx)
            atom.SetFormalCharge(0)
            atom.SetNumRadicalElectrons(0)
            atom.SetNumExplicitHs(0)
            atom.SetNoImplicit(True)
    out = rw.GetMol()
    Chem.SanitizeMol(out)
    return out


def _empty(smiles: object, error: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(STRUCTURE_COLUMNS)
    row["smiles"] = smiles
    row["error"] = error
    return row


def _standardize_one(structure: object) -> dict[str, Any]:
    from rdkit import Chem

    if not isinstance(structure, str) or not structure.strip():
        return _empty(structure, "missing structure")
    text = structure.strip()
    try:
        if text.startswith("InChI="):
            mol = Chem.MolFromInchi(text)
            what = "InChI"
        else:
            mol = Chem.MolFromSmiles(text)
            what = "SMILES"
        if mol is None or mol.GetNumAtoms() == 0:
            return _empty(structure, f"RDKit could not parse the {what}")
        inchikey = Chem.MolToInchiKey(mol)
        if not inchikey:
            return _empty(structure, "InChI generation failed")
        canonical = Chem.MolToSmiles(mol)
        simple = len(Chem.GetMolFrags(mol)) == 1 and all(
            a.GetFormalCharge() == 0 and a.GetAtomicNum() in _NONMETALS for a in mol.GetAtoms()
        )
        if simple:
            parent, parent_smiles, parent_key = mol, canonical, inchikey
        else:
            parent = _parent(mol)
            parent_smiles = Chem.MolToSmiles(parent)
            parent_key = Chem.MolToInchiKey(parent)
            if not parent_key:
                return {
                    **_empty(structure, "InChI generation failed for the parent"),
                    "inchikey": inchikey,
                    "canonical_smiles": canonical,
                }
        tautomer_key = Chem.MolToInchiKey(parent, options="/KET /15T") or parent_key
    except Exception as err:  # RDKit raises a zoo of errors on odd inputs; record them
        return _empty(structure, f"{type(err).__name__}: {err}")
    return {
        "smiles": structure,
        "inchikey": inchikey,
        "canonical_smiles": canonical,
        "parent_smiles": parent_smiles,
        "parent_inchikey": parent_key,
        "connectivity": parent_key[:14],
        "tautomer_connectivity": tautomer_key[:14],
        "error": None,
    }


def standardize_structure(structure: str) -> dict[str, Any]:
    """Standardize one SMILES or InChI (see the module docstring for the columns).

    Never raises on a bad structure: ``error`` says what went wrong and the structure
    columns are missing.
    """
    with quiet_rdkit():
        return _standardize_one(structure)


@lru_cache(maxsize=65_536)
def _standardize_cached(structure: str) -> tuple[Any, ...]:
    row = _standardize_one(structure)
    return tuple(row[c] for c in STRUCTURE_COLUMNS)


def _standardize_chunk(chunk: list[str]) -> list[dict[str, Any]]:
    with quiet_rdkit():
        return [dict(zip(STRUCTURE_COLUMNS, _standardize_cached(s), strict=True)) for s in chunk]


def standardize_smiles_many(
    smiles: Iterable[str | None],
    *,
    n_jobs: int = 1,
    chunk_size: int = 2000,
    progress: bool = False,
) -> pd.DataFrame:
    """Standardize many SMILES (or InChI strings); identical inputs are computed once.

    Parameters
    ----------
    smiles
        SMILES or ``InChI=`` strings; missing values are allowed.
    n_jobs
        Worker processes (1: in this process).
    chunk_size
        Distinct structures per task.
    progress
        Show a progress bar.

    Returns
    -------
    One row per input, in input order (``RangeIndex``), with :data:`STRUCTURE_COLUMNS`.
    Rows that failed have ``error`` set and missing structure columns. Results are
    also kept in a per-process cache of the last 65,536 distinct structures.

    Examples
    --------
    >>> df = standardize_smiles_many(["CCO", "not a smiles", "[Na+].CC(=O)[O-]"])
    >>> df["parent_smiles"].tolist(), df["error"].notna().tolist()
    (['CCO', None, 'CC(=O)O'], [False, True, False])
    """
    if n_jobs < 1:
        raise ValueError(f"expected n_jobs >= 1, found {n_jobs}")
    if chunk_size < 1:
        raise ValueError(f"expected chunk_size >= 1, found {chunk_size}")
    values = pd.Series(list(smiles), dtype=object)
    valid = pd.Series(
        np.fromiter((isinstance(v, str) and bool(v.strip()) for v in values), bool, len(values)),
        index=values.index,
    )
    uniques = pd.unique(values[valid].to_numpy())
    chunks = [list(uniques[i : i + chunk_size]) for i in range(0, len(uniques), chunk_size)]
    rows: list[dict[str, Any]] = []
    if n_jobs == 1 or len(chunks) <= 1:
        for chunk in track(chunks, description="standardizing", enabled=progress):
            rows.extend(_standardize_chunk(chunk))
    else:
        # spawn: safe in threaded parents (fork is not) and the same on every platform
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            results = pool.map(_standardize_chunk, chunks)
            for part in track(
                results, description="standardizing", enabled=progress, total=len(chunks)
            ):
                rows.extend(part)
    table = pd.DataFrame(rows, columns=list(STRUCTURE_COLUMNS))
    failed = int(table["error"].notna().sum())
    if failed:
        logger.info("%d of %d distinct structures could not be standardized", failed, len(table))
    pos = pd.Index(table["smiles"]).get_indexer(none_where_not(values, valid))
    out = table.iloc[np.where(pos < 0, 0, pos)].reset_index(drop=True) if len(table) else None
    if out is None:
        out = pd.DataFrame(
            {c: pd.Series([None] * len(values), dtype=object) for c in STRUCTURE_COLUMNS}
        )
    out = out.astype(object)
    missing = pos < 0
    if missing.any():
        out.loc[missing, list(STRUCTURE_COLUMNS)] = None
        out.loc[missing, "error"] = "missing structure"
    out["smiles"] = values.to_numpy()
    return none_where_not(out, out.notna())
