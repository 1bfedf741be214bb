"""A seeded multi-dataset compendium for pretraining compound representations.

:func:`simulate_pretraining_store` writes release-layout DE files
(``<root>/<dataset>/group_rep/<context>_de.h5ad``) and imports them with
:func:`~perturbridge.compendium.import_release`, so the models read it like any store.

Compounds
---------
Real, valid molecules: a scaffold (benzene para/meta, pyridine, naphthalene, a benzamide,
a thiophene) with two substituents from a fixed list, built and checked with RDKit, one
molecule per InChIKey. Their InChIKeys and Morgan fingerprints are real, so a structure
encoder or a Tanimoto nearest neighbour sees what it would see on real compounds. In the
third dataset every tenth compound is measured as its hydrochloride salt (its InChIKey
is the salt's, its parent InChIKey the free base's).

Generative model
----------------
Each compound ``c`` has a latent vector (``latent_dim``)::

    z[d, c] = sqrt(s) * structure[c] + sqrt(1 - s) * hidden[d, c]

with ``s = fingerprint_share``; ``structure[c] = standardize(fp[c] @ W)`` a fixed random
linear map ``W`` of the compound's Morgan bits (radius 2, 1024 bits), standardized over
the compounds; ``hidden`` standard normal and not explained by structure. With
``shared_across_datasets`` the hidden part is the same in every dataset (``hidden[d, c]
= hidden[c]``); without it each dataset draws its own, so other datasets tell nothing
about a compound beyond its structure. The effect of compound ``c`` in dataset ``d``,
context ``k``, dose ``x`` and time ``t`` on gene ``g``::

    logFC = hill_c(x) * time(t) * (z[d, c] @ L[d, k])[g] + noise

- ``L[d, k] = sqrt(0.8) * L_shared[k] + sqrt(0.2) * L_own[d, k]``: gene loadings of the
  context, mostly shared across datasets (each entry ``N(0, 1 / latent_dim)`` scaled by
  ``effect``, so an effect has SD about ``effect`` per gene at full dose);
- ``hill_c(x) = x / (x + EC50_c)`` (EC50 lognormal around 1 µM), ``time(t) = 1 -
  exp(-t / 12)`` over its value at 24 h;
- noise ``N(0, noise^2)`` per value.

Each dataset measures a random ``compounds_per_dataset`` fraction of the compounds (every
compound is measured somewhere) in every context, dose and time; the second dataset
measures 80 % of the genes (the rest are NaN in the store).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..compendium import import_release
from ..ids.chem import quiet_rdkit
from ..io import atomic_file
from .agreement import _effect_layers, _write_release

__all__ = [
    "PretrainingDesign",
    "SimulatedPretraining",
    "pretraining_molecules",
    "simulate_pretraining_store",
]

logger = logging.getLogger(__name__)

#: Scaffolds with two attachment points ``{0}`` and ``{1}`` (SMILES templates).
SCAFFOLDS: tuple[str, ...] = (
    "c1cc({0})ccc1{1}",
    "c1c({0})cccc1{1}",
    "n1cc({0})ccc1{1}",
    "c1cc({0})c2ccccc2c1{1}",
    "O=C(Nc1ccc({0})cc1){1}",
    "s1c({0})ccc1{1}",
)
#: Substituents (SMILES branches).
SUBSTITUENTS: tuple[str, ...] = (
    "C", "CC", "O", "OC", "N", "F", "Cl", "Br", "C(F)(F)F", "C#N", "C(=O)O", "C(=O)N",
    "S(=O)(=O)C", "N(C)C", "c1ccccc1", "C1CC1", "OCC", "[N+](=O)[O-]", "C(C)C", "CO",
)  # fmt: skip
_MORGAN_RADIUS = 2
_MORGAN_BITS = 1024
_SHARED_LOADING = 0.8
_SUBSET_COVERAGE = 0.8
_CID_BASE = 980_000_000
_MAX_COMPOUNDS = 1788  # distinct InChIKeys of SCAFFOLDS × SUBSTITUENTS × SUBSTITUENTS
_DF = 8.0  # residual degrees of freedom of the simulated statistics


@dataclass(frozen=True)
class PretrainingDesign:
    """What :func:`simulate_pretraining_store` simulates (see the module docstring).

    Parameters
    ----------
    n_datasets, n_compounds, n_contexts, n_genes
        Datasets (``sim_a``, ``sim_b``, …), compounds, cell contexts, genes.
    doses_uM, times_h
        Every measured compound is measured at every dose and time.
    latent_dim
        Size of the compound latent.
    fingerprint_share
        Fraction of the latent's variance explained by the Morgan bits (0 to 1).
    shared_across_datasets
        One hidden latent per compound for every dataset (True), or one per dataset.
    noise
        SD of the measurement noise (log2).
    compounds_per_dataset
        Fraction of the compounds each dataset measures.
    effect
        Per-gene SD of an effect at full dose.
    seed
        Seed of everything random.
    """

    n_datasets: int = 4
    n_compounds: int = 120
    n_contexts: int = 3
    n_genes: int = 200
    doses_uM: tuple[float, ...] = (0.1, 1.0, 10.0)
    times_h: tuple[float, ...] = (24.0,)
    latent_dim: int = 8
    fingerprint_share: float = 0.4
    shared_across_datasets: bool = True
    noise: float = 0.3
    compounds_per_dataset: float = 0.8
    effect: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in ("n_datasets", "n_compounds", "n_contexts", "n_genes", "latent_dim"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, found {getattr(self, name)!r}")
        if self.n_datasets > 26:
            problems.append(f"n_datasets must be <= 26, found {self.n_datasets}")
        if not 0.0 <= self.fingerprint_share <= 1.0:
            problems.append(f"fingerprint_share must be in [0, 1], found {self.fingerprint_share}")
        if not 0.0 < self.compounds_per_dataset <= 1.0:
            problems.append(
                f"compounds_per_dataset must be in (0, 1], found {self.compounds_per_dataset}"
            )
        if not self.doses_uM or min(self.doses_uM) <= 0:
            problems.append(f"doses_uM must be positive, found {self.doses_uM!r}")
        if not self.times_h or min(self.times_h) <= 0:
            problems.append(f"times_h must be positive, found {self.times_h!r}")
        if self.noise < 0 or self.effect < 0:
            problems.append(f"noise and effect must be >= 0, found {self.noise}, {self.effect}")
        if self.n_compounds > _MAX_COMPOUNDS:
            problems.append(
                f"n_compounds must be <= {_MAX_COMPOUNDS} (the molecules of the library)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "doses_uM", tuple(float(x) for x in self.doses_uM))
        object.__setattr__(self, "times_h", tuple(float(x) for x in self.times_h))


@dataclass(frozen=True)
class SimulatedPretraining:
    """A simulated pretraining store.

    Attributes
    ----------
    store
        The store path.
    structures
        One row per compound: ``compound`` (its key in the store: the parent
        InChIKey), ``inchikey``, ``pubchem_cid``, ``name``, ``smiles`` (the columns of
        :func:`perturbridge.models.data.read_structures`).
    truth
        The planted model: ``design``, ``datasets``, ``contexts``, ``genes``,
        ``compounds`` (keys), ``structure`` ``(C, latent_dim)``, ``hidden``
        ``(D, C, latent_dim)``, ``latent`` ``(D, C, latent_dim)``, ``loadings``
        ``(D, K, latent_dim, G)``, ``ec50`` ``(C,)``, ``measured_compounds`` ``(D, C)``,
        ``measured_genes`` ``(D, G)``, ``fingerprint_map`` ``(bits, latent_dim)``.
    """

    store: Path
    structures: pd.DataFrame
    truth: dict[str, Any]

    def write_structures(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`structures` as CSV (readable by ``read_structures``)."""
        path = Path(path)
        with atomic_file(path) as tmp:
            self.structures.to_csv(tmp, index=False)
        return path

    def effect(
        self, dataset: int, context: int, compound: int, dose: float, time: float
    ) -> np.ndarray:
        """The noise-free planted effect of one condition (all genes)."""
        t = self.truth
        w = _hill(t["ec50"][compound], dose) * _time_weight(time)
        return np.asarray(w * t["latent"][dataset, compound] @ t["loadings"][dataset, context])


def _hill(ec50: Any, dose: Any) -> Any:
    return dose / (dose + ec50)


def _time_weight(time: Any) -> Any:
    return (1.0 - np.exp(-np.asarray(time) / 12.0)) / (1.0 - np.exp(-2.0))


def pretraining_molecules(n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct valid molecules (``smiles``, ``inchikey``, ``salt_inchikey``): the
    scaffold × substituent combinations in an order drawn by ``seed``, the first ``n``
    distinct InChIKeys."""
    from rdkit import Chem

    combos = [(s, a, b) for s in SCAFFOLDS for a in SUBSTITUENTS for b in SUBSTITUENTS]
    order = np.random.default_rng([seed, 7]).permutation(len(combos))
    seen: set[str] = set()
    out: list[tuple[str, str, str]] = []
    with quiet_rdkit():
        for i in order:
            if len(out) == n:
                break
            scaffold, a, b = combos[i]
            mol = Chem.MolFromSmiles(scaffold.format(a, b))
            key = Chem.MolToInchiKey(mol) if mol is not None else ""
            if not key or key in seen:
                continue
            seen.add(key)
            smiles = Chem.MolToSmiles(mol)
            salt = Chem.MolToInchiKey(Chem.MolFromSmiles(smiles + ".Cl"))
            out.append((smiles, key, salt))
    if len(out) < n:
        raise ValueError(f"at most {len(out)} distinct molecules can be generated, asked for {n}")
    return pd.DataFrame(out, columns=["smiles", "inchikey", "salt_inchikey"])


def _morgan(smiles: pd.Series) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=_MORGAN_RADIUS, fpSize=_MORGAN_BITS)
    return np.stack(
        [gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)).astype(np.float64) for s in smiles]
    )


def _standardize(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _plant(design: PretrainingDesign, mols: pd.DataFrame) -> dict[str, Any]:
    """The planted latents, loadings, EC50s and what each dataset measures."""
    rng = np.random.default_rng([design.seed, 1])
    n_d, n_c, n_k = design.n_datasets, design.n_compounds, design.n_contexts
    n_g, dim = design.n_genes, design.latent_dim
    fp = _morgan(mols["smiles"])
    fmap = rng.standard_normal((fp.shape[1], dim))
    structure = _standardize(fp @ fmap)
    if design.shared_across_datasets:
        hidden = np.broadcast_to(rng.standard_normal((n_c, dim)), (n_d, n_c, dim)).copy()
    else:
        hidden = rng.standard_normal((n_d, n_c, dim))
    share = design.fingerprint_share
    latent = np.sqrt(share) * structure[None] + np.sqrt(1.0 - share) * hidden
    scale = design.effect / np.sqrt(dim)
    shared = rng.standard_normal((n_k, dim, n_g)) * scale
    own = rng.standard_normal((n_d, n_k, dim, n_g)) * scale
    loadings = np.sqrt(_SHARED_LOADING) * shared[None] + np.sqrt(1 - _SHARED_LOADING) * own
    ec50 = rng.lognormal(0.0, 1.0, n_c)
    measured_c = rng.random((n_d, n_c)) < design.compounds_per_dataset
    for c in np.flatnonzero(~measured_c.any(axis=0)):
        measured_c[rng.integers(n_d), c] = True
    measured_g = np.ones((n_d, n_g), dtype=bool)
    if n_d > 1:
        keep = rng.choice(n_g, max(1, round(_SUBSET_COVERAGE * n_g)), replace=False)
        measured_g[1] = False
        measured_g[1, keep] = True
    return {
        "structure": structure, "hidden": hidden, "latent": latent, "loadings": loadings,
        "ec50": ec50, "measured_compounds": measured_c, "measured_genes": measured_g,
        "fingerprint_map": fmap,
    }  # fmt: skip


def _write_files(
    root: Path, design: PretrainingDesign, mols: pd.DataFrame, truth: dict[str, Any]
) -> None:
    datasets, contexts, genes = truth["datasets"], truth["contexts"], truth["genes"]
    doses, times = np.asarray(design.doses_uM), np.asarray(design.times_h)
    n_dt = len(doses) * len(times)
    ave = np.random.default_rng([design.seed, 2]).normal(7.0, 2.0, design.n_genes)
    unscaled = float(np.sqrt(2.0 / 3.0))
    for d, dataset in enumerate(datasets):
        comps = np.flatnonzero(truth["measured_compounds"][d])
        cols = np.flatnonzero(truth["measured_genes"][d])
        ci = np.repeat(comps, n_dt)
        dose = np.tile(np.repeat(doses, len(times)), len(comps))
        time = np.tile(times, len(comps) * len(doses))
        weight = _hill(truth["ec50"][ci], dose) * _time_weight(time)
        salt = (d == 2) & (ci % 10 == 0)
        inchikey = np.where(
            salt, mols["salt_inchikey"].to_numpy()[ci], mols["inchikey"].to_numpy()[ci]
        )
        names = np.array(
            [f"PT-{c:04d}" + (" HCl" if s else "") for c, s in zip(ci, salt, strict=True)],
            dtype=object,
        )
        source_id = np.array([f"{dataset.upper()}-{c:05d}" for c in ci], dtype=object)
        for k, ctx in enumerate(contexts):
            frng = np.random.default_rng([design.seed, 3, d, k])
            mean = weight[:, None] * (truth["latent"][d, ci] @ truth["loadings"][d, k][:, cols])
            logfc = (mean + frng.standard_normal(mean.shape) * design.noise).astype(np.float32)
            sd = np.full(logfc.shape, max(design.noise, 1e-3) / unscaled, dtype=np.float32)
            layers = _effect_layers(logfc, sd, unscaled, _DF, ave[cols])
            cond = [
                f"{ctx}:{s}:{x:g}uM:{t:g}h" for s, x, t in zip(source_id, dose, time, strict=True)
            ]
            obs = pd.DataFrame(
                {
                    "cell_type": ctx,
                    "perturbagen": source_id,
                    "perturbagen_name": names,
                    "compound_inchikey": inchikey.astype(object),
                    "compound_parent_inchikey": mols["inchikey"].to_numpy(dtype=object)[ci],
                    "pubchem_cid": (_CID_BASE + ci).astype(np.int64),
                    "pert_dose_uM": dose,
                    "pert_time_h": time,
                    "is_control": False,
                },
                index=pd.Index(
                    [f"{c} - {ctx}:DMSO:{t:g}h" for c, t in zip(cond, time, strict=True)]
                ),
            )
            var = pd.DataFrame({"symbol": [f"PTG{g + 1}" for g in cols]}, index=genes[cols])
            _write_release(root / dataset / "group_rep" / f"{ctx}_de.h5ad", layers, obs, var)


def simulate_pretraining_store(
    out: str | os.PathLike[str],
    *,
    design: PretrainingDesign | None = None,
    release_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> SimulatedPretraining:
    """Simulate a multi-dataset compendium (module docstring) into a store at ``out``.

    Parameters
    ----------
    out
        The store folder (new or empty).
    design
        What is simulated (:class:`PretrainingDesign`).
    release_dir
        Write (and keep) the release-layout files here; default: a temporary folder,
        removed after the import.
    progress
        Show progress bars.

    Examples
    --------
    >>> sim = simulate_pretraining_store("pre_store")  # doctest: +SKIP
    >>> sim.structures.head()  # doctest: +SKIP
    """
    design = design or PretrainingDesign()
    mols = pretraining_molecules(design.n_compounds, seed=design.seed)
    truth = _plant(design, mols)
    truth.update(
        design=asdict(design),
        datasets=tuple(f"sim_{chr(ord('a') + d)}" for d in range(design.n_datasets)),
        contexts=tuple(f"PTCL{k + 1:02d}" for k in range(design.n_contexts)),
        genes=np.array([f"PTG{g + 1:05d}" for g in range(design.n_genes)]),
        compounds=tuple(mols["inchikey"]),
    )
    own_root = release_dir is None
    root = Path(tempfile.mkdtemp(prefix="pb-pretrain-sim-")) if own_root else Path(str(release_dir))
    if not own_root and root.exists() and any(root.iterdir()):
        raise ValueError(f"release folder {root} is not empty; give a new or empty folder")
    try:
        _write_files(root, design, mols, truth)
        store = Path(out)
        import_release(root, store, progress=progress)
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    structures = pd.DataFrame(
        {
            "compound": mols["inchikey"].to_numpy(dtype=object),
            "inchikey": mols["inchikey"].to_numpy(dtype=object),
            "pubchem_cid": pd.array(_CID_BASE + np.arange(len(mols)), dtype="Int64"),
            "name": [f"PT-{c:04d}" for c in range(len(mols))],
            "smiles": mols["smiles"].to_numpy(dtype=object),
        }
    )
    logger.info("simulated pretraining store %s: %s", store, truth["datasets"])
    return SimulatedPretraining(store=store, structures=structures, truth=truth)
