"""Train / validation / test splits of training data, saved as files and reused.

Four kinds (:data:`SPLIT_KINDS`), each assigning every condition to ``train``, ``val``
or ``test``; every replicate contrast of a condition goes with it.

``pair``
    As published for the LPM: ``pair_fraction`` (30 %) of the (dataset, context,
    compound) pairs are held out, every condition of a held-out pair with it. A held-out
    compound must not be unseen in training: when all pairs of a compound were drawn,
    one of them is swapped with a training pair of a compound that keeps another
    training pair (so the number held out stays the same). Each compound goes to ``val``
    or to ``test`` as a whole (drawn in proportion to ``val_fraction`` :
    ``test_fraction``, at least one compound each), so the validation and test compounds
    are disjoint.
``compound``
    Compound hold-out within one target dataset (``target_dataset``): ``test_fraction``
    and ``val_fraction`` of the target dataset's compounds (at least one each) and every
    condition of them *in that dataset* are held out; the other datasets stay in training,
    held-out compounds included (what a pretrained representation can learn from).
``molecule``
    Cross-dataset molecule hold-out as published: in each dataset the eligible molecules
    are those that occur in at least one other dataset. Where at least ``min_shared``
    are eligible, ``test_fraction`` / ``val_fraction`` of them are held out (at least
    one each); otherwise the hold-out is sample-balanced: eligible molecules are drawn in
    random order into test, then val, until each part holds about ``test_fraction`` /
    ``val_fraction`` of the dataset's conditions (at least one molecule each when there
    are three or more). A molecule is never held out in every dataset it occurs in: if
    that happens it goes back to training in one of them (drawn at random).
``context``
    Context hold-out: every condition of the ``contexts`` (or, when not given, of
    ``test_fraction`` of the contexts, at least one) goes to test, in every dataset. With
    three or more contexts, ``val_fraction`` of the others (at least one) go to val;
    with two, val is a random ``val_fraction`` of the training conditions (an
    in-distribution validation set, said so in the manifest).

The published splitting code was not available to us: ``pair`` and ``molecule`` follow
the published description (the fractions, the swaps, the eligibility and ``min_shared``
rules); where it leaves a choice open (the order of the swaps, how val and test share
the held-out compounds, what "sample-balanced" fills) the choice is the one written
here, and the manifest records what each draw did.

A :class:`Split` is saved as a folder (:func:`save_split`): ``assignment.parquet``
(``condition_id``, ``part``) and ``manifest.json`` (kind, options, seed, counts per part
and dataset, what was held out, the package version and the data source).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..io import atomic_dir
from .data import TrainingData

__all__ = [
    "PARTS",
    "SPLITTERS",
    "SPLIT_KINDS",
    "Split",
    "SplitOptions",
    "describe_split_kinds",
    "load_split",
    "make_split",
    "save_split",
]

logger = logging.getLogger(__name__)

#: The parts of a split.
PARTS: tuple[str, ...] = ("train", "val", "test")
_FORMAT = "perturbridge-split/1"
_ASSIGNMENT = "assignment.parquet"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SplitOptions:
    """Options of :func:`make_split` (see the module docstring for each kind).

    Parameters
    ----------
    seed
        Seed of every random draw.
    target_dataset
        The dataset whose compounds are held out (``compound``; required there).
    test_fraction, val_fraction
        Fractions held out for test and validation.
    pair_fraction
        Fraction of (dataset, context, compound) pairs held out (``pair``).
    min_shared
        Eligible molecules a dataset needs for the fraction rule (``molecule``).
    contexts
        The contexts held out for test (``context``; default: drawn).
    """

    seed: int = 0
    target_dataset: str | None = None
    test_fraction: float = 0.1
    val_fraction: float = 0.1
    pair_fraction: float = 0.3
    min_shared: int = 20
    contexts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("test_fraction", "val_fraction", "pair_fraction"):
            v = getattr(self, name)
            if not 0.0 < float(v) < 1.0:
                problems.append(f"{name} must be between 0 and 1 (exclusive), found {v!r}")
        if self.test_fraction + self.val_fraction >= 1.0:
            problems.append(
                f"test_fraction + val_fraction must be < 1, found "
                f"{self.test_fraction} + {self.val_fraction}"
            )
        if int(self.min_shared) < 1:
            problems.append(f"min_shared must be >= 1, found {self.min_shared}")
        if isinstance(self.contexts, str):
            problems.append(f"contexts is a tuple of names, found the string {self.contexts!r}")
        if problems:
            raise ValueError("; ".join(problems))
        if self.contexts is not None:
            object.__setattr__(self, "contexts", tuple(str(c) for c in self.contexts))


@dataclass(frozen=True)
class Split:
    """A split: the part of each condition and a manifest of how it was made."""

    kind: str
    assignment: pd.Series
    manifest: dict[str, Any]

    def rows(self, data: TrainingData, part: str) -> np.ndarray:
        """int64 row numbers of ``data`` in ``part`` (``train``, ``val`` or ``test``).

        Conditions of ``data`` that the split does not know are in no part (logged as a
        warning); a split that knows none of them is an error (it was made for other
        data)."""
        if part not in PARTS:
            raise KeyError(f"unknown part {part!r}; parts: {list(PARTS)}")
        parts = data.conditions["condition_id"].map(self.assignment)
        if parts.isna().all():
            raise ValueError(
                f"none of the {len(data)} conditions of the data is in this {self.kind} split "
                f"(made for {self.manifest.get('source', {}).get('path', 'other data')}; first "
                f"condition here: {data.conditions['condition_id'].iloc[0]!r})"
            )
        unknown = int(parts.isna().sum())
        if unknown:
            logger.warning(
                "%d of %d conditions of the data are not in this %s split (they are in no "
                "part; first: %r): the split was made for other data (source %s)",
                unknown, len(data), self.kind,
                data.conditions["condition_id"][parts.isna()].iloc[0],
                self.manifest.get("source", {}).get("path", "unknown"),
            )  # fmt: skip
        return np.flatnonzero((parts == part).to_numpy())

    def compounds(self, part: str) -> list[str]:
        """The compounds the manifest lists as held out in ``part`` (``val``/``test``)."""
        return list(self.manifest.get("held_out", {}).get(part, {}).get("compounds", []))


# ---------------------------------------------------------------- helpers


def _n_of(n: int, fraction: float, *, at_least: int = 1) -> int:
    """``round(n * fraction)``, at least ``at_least`` when ``n`` allows it."""
    return min(n, max(at_least, round(n * fraction))) if n else 0


def _isin(values: np.ndarray, wanted: Any) -> np.ndarray:
    """``np.isin`` by hashing (NumPy compares object arrays element by element)."""
    return pd.Series(values).isin(list(wanted)).to_numpy()


def _unique_conditions(data: TrainingData) -> pd.DataFrame:
    """One row per condition id (the first of its replicate contrasts)."""
    cols = ["condition_id", "dataset", "context", "compound"]
    return data.conditions[cols].drop_duplicates("condition_id").reset_index(drop=True)


def _assign(cond: pd.DataFrame, held: Mapping[str, np.ndarray]) -> pd.Series:
    part = np.full(len(cond), "train", dtype=object)
    for name in ("val", "test"):
        part[held[name]] = name
    return pd.Series(part, index=pd.Index(cond["condition_id"].to_numpy(), name="condition_id"),
                     name="part")  # fmt: skip


def _held(cond: pd.DataFrame, mask: np.ndarray) -> dict[str, Any]:
    sub = cond[mask]
    return {
        "compounds": sorted(sub["compound"].unique().tolist()),
        "contexts": sorted(sub["context"].unique().tolist()),
        "datasets": sorted(sub["dataset"].unique().tolist()),
    }


# ---------------------------------------------------------------- the four kinds


def _pair(cond: pd.DataFrame, opts: SplitOptions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng([opts.seed, 1])
    pairs = cond[["dataset", "context", "compound"]].drop_duplicates().reset_index(drop=True)
    n_pairs = len(pairs)
    n_hold = round(opts.pair_fraction * n_pairs)
    order = rng.permutation(n_pairs)
    held = np.zeros(n_pairs, dtype=bool)
    held[order[:n_hold]] = True
    comp = pairs["compound"].to_numpy()
    codes, comp_names = pd.factorize(comp)
    train_n = np.bincount(codes[~held], minlength=len(comp_names))
    swaps = 0
    unswapped = 0
    # swaps: a compound with every pair held out gets one back in training, in exchange
    # for a training pair of a compound that keeps another training pair
    for c in rng.permutation(len(comp_names)):
        if train_n[c] > 0:
            continue
        mine = np.flatnonzero(codes == c)
        held[rng.choice(mine)] = False
        train_n[c] += 1
        donors = np.flatnonzero(~held & (train_n[codes] >= 2) & (codes != c))
        if len(donors):
            give = rng.choice(donors)
            held[give] = True
            train_n[codes[give]] -= 1
            swaps += 1
        else:
            unswapped += 1
    ratio = opts.val_fraction / (opts.val_fraction + opts.test_fraction)
    held_comps = np.unique(comp[held])
    draws = rng.random(len(held_comps)) < ratio
    if len(held_comps) >= 2 and (draws.all() or not draws.any()):
        draws[rng.integers(len(held_comps))] = not draws[0]  # val and test both get one
    side = dict(zip(held_comps, draws, strict=True))
    to_val = np.array([held[i] and side.get(comp[i], False) for i in range(n_pairs)], dtype=bool)
    to_test = held & ~to_val
    key = pd.MultiIndex.from_frame(cond[["dataset", "context", "compound"]])
    pkey = pd.MultiIndex.from_frame(pairs)
    masks = {
        "val": key.isin(pkey[to_val]),
        "test": key.isin(pkey[to_test]),
    }
    info = {
        "n_pairs": n_pairs,
        "n_pairs_held_out": int(held.sum()),
        "n_pairs_val": int(to_val.sum()),
        "n_pairs_test": int(to_test.sum()),
        "swaps": swaps,
        "returned_without_swap": unswapped,
    }
    return masks, info


def _compound(
    cond: pd.DataFrame, opts: SplitOptions
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    target = opts.target_dataset
    names = sorted(cond["dataset"].unique())
    if target is None:
        raise ValueError(f"a compound split needs target_dataset (one of {names})")
    if target not in names:
        raise KeyError(f"target dataset {target!r} is not in the data; datasets: {names}")
    in_target = (cond["dataset"] == target).to_numpy()
    comps = np.array(sorted(cond.loc[in_target, "compound"].unique()), dtype=object)
    if len(comps) < 3:
        raise ValueError(
            f"dataset {target!r} has {len(comps)} compounds; a compound hold-out needs at least "
            "3 (train, val and test)"
        )
    rng = np.random.default_rng([opts.seed, 2])
    order = comps[rng.permutation(len(comps))]
    n_test = _n_of(len(comps), opts.test_fraction)
    n_val = min(_n_of(len(comps), opts.val_fraction), len(comps) - n_test - 1)
    test_c, val_c = order[:n_test], order[n_test : n_test + n_val]
    comp = cond["compound"].to_numpy()
    masks = {
        "val": in_target & _isin(comp, val_c),
        "test": in_target & _isin(comp, test_c),
    }
    info = {"target_dataset": target, "n_target_compounds": len(comps)}
    return masks, info


def _molecule(
    cond: pd.DataFrame, opts: SplitOptions
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng([opts.seed, 3])
    where = cond.groupby("compound")["dataset"].nunique().to_dict()
    comp = cond["compound"].to_numpy()
    ds = cond["dataset"].to_numpy()
    held: dict[tuple[str, str], str] = {}  # (dataset, compound) -> part
    rules: dict[str, dict[str, Any]] = {}
    for d in sorted(np.unique(ds)):
        mine = ds == d
        counts = pd.Series(comp[mine]).value_counts()
        eligible = np.array(sorted(c for c in counts.index if where[c] >= 2), dtype=object)
        order = eligible[rng.permutation(len(eligible))]
        if len(eligible) >= opts.min_shared:
            n_test = _n_of(len(eligible), opts.test_fraction)
            n_val = _n_of(len(eligible), opts.val_fraction)
            parts: dict[str, list[str]] = {
                "test": list(order[:n_test]),
                "val": list(order[n_test : n_test + n_val]),
            }
            rule = "fraction"
        else:
            parts = {"test": [], "val": []}
            total = int(mine.sum())
            rest = list(order)
            for part, frac in (("test", opts.test_fraction), ("val", opts.val_fraction)):
                taken = 0
                chosen: list[str] = []
                while rest and (taken < frac * total or (not chosen and len(order) >= 3)):
                    c = rest.pop(0)
                    chosen.append(c)
                    taken += int(counts[c])
                parts[part] = chosen
            rule = "sample_balanced"
        for part, cs in parts.items():
            for c in cs:
                held[(d, str(c))] = part
        rules[d] = {"eligible": len(eligible), "rule": rule,
                    "test": len(parts["test"]), "val": len(parts["val"])}  # fmt: skip
    # a molecule is never held out everywhere it occurs
    released = []
    pairs = cond[["compound", "dataset"]].drop_duplicates().sort_values(["compound", "dataset"])
    datasets_of = pairs.groupby("compound")["dataset"].agg(list).to_dict()
    for c in sorted({c for _, c in held}):
        ds_of = datasets_of[c]
        if all((d, c) in held for d in ds_of):
            d = ds_of[int(rng.integers(len(ds_of)))]
            del held[(d, c)]
            released.append([d, c])
    part_of = pd.Series(held, dtype=object)
    keys = pd.MultiIndex.from_arrays([ds, comp])
    looked = part_of.reindex(keys).to_numpy() if len(part_of) else np.full(len(cond), None)
    masks = {"val": looked == "val", "test": looked == "test"}
    return masks, {"per_dataset": rules, "released_to_train": released}


def _context(
    cond: pd.DataFrame, opts: SplitOptions
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng([opts.seed, 4])
    contexts = np.array(sorted(cond["context"].unique()), dtype=object)
    if len(contexts) < 2:
        raise ValueError(
            f"a context hold-out needs at least 2 contexts, the data has {list(contexts)}"
        )
    if opts.contexts is not None:
        unknown = [c for c in opts.contexts if c not in set(contexts)]
        if unknown:
            raise KeyError(f"contexts {unknown} are not in the data; contexts: {list(contexts)}")
        test_k = np.array(opts.contexts, dtype=object)
        if len(test_k) >= len(contexts):
            raise ValueError("the held-out contexts leave none for training")
    else:
        n_test = min(_n_of(len(contexts), opts.test_fraction), len(contexts) - 1)
        test_k = contexts[rng.permutation(len(contexts))[:n_test]]
    ctx = cond["context"].to_numpy()
    test = _isin(ctx, test_k)
    others = np.array([c for c in contexts if c not in set(test_k)], dtype=object)
    if len(others) >= 2:
        n_val = min(_n_of(len(others), opts.val_fraction), len(others) - 1)
        val_k = others[rng.permutation(len(others))[:n_val]]
        val = _isin(ctx, val_k)
        how = "held-out contexts"
    else:
        train_rows = np.flatnonzero(~test)
        pick = rng.permutation(train_rows)[: _n_of(len(train_rows), opts.val_fraction)]
        val = np.zeros(len(cond), dtype=bool)
        val[pick] = True
        how = "random training conditions (in-distribution: too few contexts)"
    return {"val": val, "test": test}, {"validation": how}


#: Split kinds → the function that draws them (a registry).
SPLITTERS: dict[
    str, Callable[[pd.DataFrame, SplitOptions], tuple[dict[str, np.ndarray], dict[str, Any]]]
] = {
    "pair": _pair,
    "compound": _compound,
    "molecule": _molecule,
    "context": _context,
}
#: Names of the split kinds.
SPLIT_KINDS: tuple[str, ...] = tuple(SPLITTERS)

_DESCRIPTIONS = {
    "pair": "30 % of (dataset, context, compound) pairs held out; no held-out compound "
    "unseen in training; val and test compounds disjoint",
    "compound": "compounds of one target dataset held out (other datasets stay in training)",
    "molecule": "per dataset, molecules shared with another dataset held out (10 %/10 %, or "
    "sample-balanced below min_shared); never held out everywhere",
    "context": "cell contexts held out in every dataset",
}


def describe_split_kinds() -> dict[str, str]:
    """Each split kind with a one-line description."""
    return {k: _DESCRIPTIONS[k] for k in SPLIT_KINDS}


# ---------------------------------------------------------------- make, save, load


def make_split(data: TrainingData, *, kind: str, options: SplitOptions | None = None) -> Split:
    """Draw a split of ``data`` (see the module docstring for each ``kind``).

    Examples
    --------
    >>> opts = SplitOptions(target_dataset="a")  # doctest: +SKIP
    >>> split = make_split(data, kind="compound", options=opts)  # doctest: +SKIP
    >>> train_rows = split.rows(data, "train")  # doctest: +SKIP
    """
    if kind not in SPLITTERS:
        raise KeyError(f"unknown split kind {kind!r}; kinds: {list(SPLIT_KINDS)}")
    opts = options or SplitOptions()
    cond = _unique_conditions(data)
    masks, info = SPLITTERS[kind](cond, opts)
    assignment = _assign(cond, {p: np.flatnonzero(m) for p, m in masks.items()})
    for part in PARTS:
        if not (assignment == part).any():
            raise ValueError(
                f"the {kind} split leaves {part!r} empty ({len(cond)} conditions; options "
                f"{asdict(opts)}): the data is too small for this split"
            )
    manifest = {
        "format": _FORMAT,
        "kind": kind,
        "options": asdict(opts),
        "seed": opts.seed,
        "created_by": f"perturbridge {__version__}",
        "source": data.source,
        "n_conditions": len(cond),
        "counts": _counts(cond, assignment),
        "held_out": {p: _held(cond, masks[p]) for p in ("val", "test")},
        "details": info,
    }
    return Split(kind=kind, assignment=assignment, manifest=_plain(manifest))


def _counts(cond: pd.DataFrame, assignment: pd.Series) -> dict[str, Any]:
    table = pd.crosstab(cond["dataset"].to_numpy(), assignment.to_numpy())
    table = table.reindex(columns=list(PARTS), fill_value=0)
    return {
        "total": {p: int(table[p].sum()) for p in PARTS},
        "per_dataset": {str(d): {p: int(table.loc[d, p]) for p in PARTS} for d in table.index},
    }


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_split(split: Split, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``split`` to the folder ``path`` (``assignment.parquet`` and
    ``manifest.json``), atomically; an existing non-empty folder only with ``overwrite``."""
    path = Path(path)
    frame = pd.DataFrame(
        {"condition_id": split.assignment.index.astype(str),
         "part": split.assignment.astype(str).to_numpy()}
    )  # fmt: skip
    try:
        with atomic_dir(path, replace=overwrite) as tmp:
            frame.to_parquet(tmp / _ASSIGNMENT, index=False)
            (tmp / _MANIFEST).write_text(json.dumps(split.manifest, indent=1), encoding="utf-8")
    except FileExistsError:
        raise FileExistsError(
            f"{path} exists and is not empty; choose a new folder or pass overwrite=True"
        ) from None
    return path


def load_split(path: str | os.PathLike[str]) -> Split:
    """Read a split written by :func:`save_split` (checked: files, parts, counts)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no split folder {path}")
    missing = [n for n in (_ASSIGNMENT, _MANIFEST) if not (path / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a split folder: {missing} missing")
    try:
        manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / _MANIFEST}: not JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ValueError(f"{path / _MANIFEST} is not a split manifest (format {_FORMAT!r})")
    kind = manifest.get("kind")
    if kind not in SPLITTERS:
        raise ValueError(f"{path / _MANIFEST}: unknown split kind {kind!r}")
    frame = pd.read_parquet(path / _ASSIGNMENT)
    cols = [c for c in ("condition_id", "part") if c not in frame.columns]
    if cols:
        raise ValueError(f"{path / _ASSIGNMENT} lacks columns {cols}")
    bad = frame.loc[~frame["part"].isin(PARTS), "part"].unique()[:5].tolist()
    if bad:
        raise ValueError(f"{path / _ASSIGNMENT}: parts other than {list(PARTS)}: {bad}")
    dup = frame.loc[frame["condition_id"].duplicated(), "condition_id"].head(5).tolist()
    if dup:
        raise ValueError(f"{path / _ASSIGNMENT}: condition ids listed twice: {dup}")
    totals = frame["part"].value_counts().reindex(list(PARTS), fill_value=0)
    expected = manifest.get("counts", {}).get("total", {})
    if {p: int(totals[p]) for p in PARTS} != {p: int(expected.get(p, -1)) for p in PARTS}:
        raise ValueError(
            f"{path}: the assignment ({dict(totals)}) does not match the manifest's counts "
            f"({expected}); the split folder was changed or damaged"
        )
    assignment = pd.Series(
        frame["part"].astype(str).to_numpy(),
        index=pd.Index(frame["condition_id"].astype(str).to_numpy(), name="condition_id"),
        name="part",
    )
    return Split(kind=str(kind), assignment=assignment, manifest=manifest)
