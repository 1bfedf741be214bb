"""A seeded multi-assay compendium for the agreement diagnostics (``docs/agreement.md``).

:func:`simulate_agreement_store` writes DE files in the layout of the original public
release (``<root>/<dataset>/group_rep/<context>_de.h5ad`` and
``<root>/<dataset>/separate_rep/<context>_de.h5ad``, every layer of
:data:`~perturbridge.schema.EFFECT_LAYERS`) and imports them with
:func:`~perturbridge.compendium.import_release` into a compendium store. Every dataset
measures the same compounds (same InChIKey, so the same ``compound_id`` in the catalog,
under dataset-specific names and upstream ids) in the same cell contexts, doses and
times, so that every condition has a cross-dataset match.

Generative model
----------------
Biology, shared by every dataset, for compound ``c`` in context ``k`` at dose ``x`` and
time ``t``::

    truth[c, k, x, t, g] = hill_c(x) * time(t) * (specific[c, k, g] + generic[k, g])

- ``generic[k]``: the **generic context response**, shared by every compound of a
  context (a stress / proliferation-like programme): dense (about 15 % of the genes)
  and large, with heavy-tailed magnitudes (signed lognormal, median
  ``generic_effect``). Contexts share most of it (each keeps a gene with probability
  0.8, with its own magnitude modulation) plus a few private genes.
- ``specific[c, k]``: the **compound-specific effect**: sparse (about 5 % of the genes),
  signed, magnitudes close to ``shared_effect`` (lognormal, small spread). A context
  keeps each responsive gene of the compound with probability 0.75 and adds a few of its
  own (partly shared across contexts).
- ``hill_c(x) = x / (x + EC50_c)`` (EC50 lognormal around 1 µM) and
  ``time(t) = (1 - exp(-t / 12)) / (1 - exp(-2))`` (1 at 24 h).

Measurement, per dataset ``d`` (with ``distortion=True``)::

    expected[c, k, x, t, g] = gain[d, g] * phi[d, g](truth * jitter[d, condition, g])

- ``gain[d, g]``: a gene-wise gain (lognormal, SD 0.3 on the log scale): assays differ
  in per-gene dynamic range.
- ``phi[d, g](u) = sign(u) |u| ** gamma[d, g]``, ``gamma`` uniform in [0.85, 1.15]: a
  gene-wise monotone nonlinearity (compression / expansion).
- ``jitter[d, condition, g]``: a condition-level multiplicative gene-wise gain
  (lognormal, SD ``gain_jitter``): how strongly one well of one assay expresses each
  gene's response. It never changes a sign.
- Datasets differ in noise (``noise`` times 1, 1.5, 0.8, 1.2, … with gene-wise scatter)
  and the second dataset measures only 70 % of the genes (absent from its files, so NaN
  on the union axis of the store).

With ``distortion=False`` there is no gain, nonlinearity or jitter, every dataset has the
same noise level and measures every gene.

Noise and statistics: replicate contrasts (separate mode) are ``expected + e_i - e_c``
with ``e_i ~ N(0, sigma[d, g]^2)`` per replicate and ``e_c ~ N(0, sigma^2 / n_controls)``
the vehicle mean; the group-mode logFC is ``expected + mean(e_i) - e_c``. The residual SD
is a moderated chi-square estimate of ``sigma`` (residual df ``n_replicates + n_controls
- 2``, prior df 4); ``t``, ``P.Value`` (Student t), ``CI.L``/``CI.R``,
``stdev.unscaled`` follow from it as in limma; ``adj.P.Value.within_one_contrast`` is
Benjamini-Hochberg within each contrast, ``adj.P.Value.across_all_contrasts`` over every
contrast of the file; ``AveExpr`` is a gene baseline plus half the logFC; ``B`` is the
normal-approximation log-odds. With the defaults, DE sets (``adj.P < 0.05``) hold about
10-15 % of the genes at 1 and 10 µM and a few % at 0.1 µM. P-values are interpolated on a
fine grid (:func:`two_sided_p`) and every layer is ``float32``, so that 100,000
conditions × 978 genes are generated and written in well under a minute.

Why the published pattern appears (distortion on)
-------------------------------------------------
The **direction** agreement of a matched pair is counted on the DE genes of each side.
Besides the generic genes, those include the compound-specific genes, where the other
dataset's signature has the same sign (the biology is shared and no distortion flips a
sign) but a centroid of *other* compounds has no consistent sign. So direction observed
beats the source-centroid baseline, with or without distortions.

The **DEG-restricted Spearman** correlation also depends on the magnitude ranking within
the DE set, and there the centroid is strong: the generic context response, shared by
every compound, dominates the DE set and its ranking is the same in every assay. The
centroid averages many conditions, so it carries the generic ranking free of the
condition-level jitter and of noise, while the matched signature ``a`` carries its own
jitter on top of the other side's: both sides of the observed pair have their magnitude
ranking scrambled independently, the baseline pair only one side. With jitter the loss
on the generic genes outweighs the gain from the compound-specific genes, and
``deg_spearman`` observed falls below the source centroid (the compound-specific
magnitudes are smaller than the generic ones, so those genes sit near the middle of the
ranking and add little); without distortions the ranking of ``a`` is nearly exact and the
compound-specific genes put observed above the baseline. (The dataset gains and
nonlinearities hit ``a`` and the centroid alike, since they come from the same dataset;
the jitter, which a centroid averages away, is what separates them.)

Examples
--------
>>> from perturbridge.simulate.agreement import simulate_agreement_store
>>> store = simulate_agreement_store("sim_store", AgreementDesign(n_compounds=20))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..compendium import import_release
from ..progress import track

__all__ = [
    "AgreementDesign",
    "AgreementTruth",
    "sim_inchikey",
    "simulate_agreement_store",
    "two_sided_p",
    "write_agreement_release",
]

logger = logging.getLogger(__name__)

#: Fraction of genes in the generic context response and in a compound's own effect.
_GENERIC_FRACTION = 0.15
_SPECIFIC_FRACTION = 0.05
#: Gene-wise gain (SD of log gain), nonlinearity exponent range, and coverage of the
#: dataset that measures a subset of genes (distortion on).
_GAIN_SD = 0.3
_GAMMA_RANGE = (0.85, 1.15)
_SUBSET_COVERAGE = 0.7
#: Noise multiplier of each dataset (cycled) when distortions are on.
_NOISE_FACTORS = (1.0, 1.5, 0.8, 1.2)
#: Prior degrees of freedom of the moderated variance (limma's d0).
_PRIOR_DF = 4.0

_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def sim_inchikey(index: int, *, namespace: str = "perturbridge-sim-compound") -> str:
    """A deterministic InChIKey-shaped id (``14-10-1`` upper-case letters) for compound
    ``index``; not a real structure (it is derived from a SHA-256 of the index)."""
    h = hashlib.sha256(f"{namespace}:{index}".encode()).digest()
    letters = "".join(_LETTERS[b % 26] for b in h[:22])
    return f"{letters[:14]}-{letters[14:22]}SA-N"


@dataclass(frozen=True)
class AgreementTruth:
    """The planted biology and distortions of a simulated agreement store.

    Attributes
    ----------
    genes
        Gene ids (the union axis of the store, sorted as in its catalog).
    contexts, compounds, doses, times
        The design; ``compounds`` are the InChIKey-like ids (``compound_id`` of the
        catalog).
    generic
        ``(n_contexts, n_genes)`` generic context response.
    specific
        ``(n_compounds, n_contexts, n_genes)`` compound-specific effect.
    ec50
        ``(n_compounds,)`` EC50 in µM of each compound.
    gain, gamma
        ``(n_datasets, n_genes)`` gene-wise gain and nonlinearity exponent (1 without
        distortions).
    measured
        ``(n_datasets, n_genes)`` which genes each dataset measures.
    noise
        ``(n_datasets, n_genes)`` replicate noise SD.
    datasets
        Dataset names.
    """

    genes: np.ndarray
    datasets: tuple[str, ...]
    contexts: tuple[str, ...]
    compounds: tuple[str, ...]
    doses: tuple[float, ...]
    times: tuple[float, ...]
    generic: np.ndarray
    specific: np.ndarray
    ec50: np.ndarray
    gain: np.ndarray
    gamma: np.ndarray
    measured: np.ndarray
    noise: np.ndarray

    def shared_effect(self, compound: int, context: int, dose: float, time: float) -> np.ndarray:
        """The planted effect (before any assay distortion) of one condition."""
        return (
            _dose_weight(self.ec50[compound], dose)
            * _time_weight(time)
            * (self.specific[compound, context] + self.generic[context])
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the truth to a ``.npz`` file (read back with :meth:`load`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__
        }
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AgreementTruth:
        """Read a truth written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            kw: dict[str, Any] = {k: z[k] for k in cls.__dataclass_fields__}
        for k in ("datasets", "contexts", "compounds"):
            kw[k] = tuple(str(v) for v in kw[k])
        for k in ("doses", "times"):
            kw[k] = tuple(float(v) for v in kw[k])
        return cls(**kw)


def _dose_weight(ec50: np.ndarray | float, dose: np.ndarray | float) -> Any:
    return dose / (dose + ec50)


def _time_weight(time: np.ndarray | float) -> Any:
    return (1.0 - np.exp(-np.asarray(time) / 12.0)) / (1.0 - np.exp(-2.0))


def _signed_lognormal(rng: np.random.Generator, n: int, median: float, spread: float) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), n) * rng.lognormal(np.log(median), spread, n)


def _plant(
    rng: np.random.Generator,
    *,
    n_contexts: int,
    n_compounds: int,
    n_genes: int,
    shared_effect: float,
    generic_effect: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generic response ``(K, G)``, specific effects ``(C, K, G)`` and EC50 ``(C,)``."""
    g0 = np.zeros(n_genes)
    on = rng.random(n_genes) < _GENERIC_FRACTION
    g0[on] = _signed_lognormal(rng, int(on.sum()), generic_effect, 1.0)
    generic = np.empty((n_contexts, n_genes))
    for k in range(n_contexts):
        keep = rng.random(n_genes) < 0.8
        own = (rng.random(n_genes) < 0.02) & (g0 == 0)
        generic[k] = g0 * keep * rng.lognormal(0.0, 0.3, n_genes)
        generic[k, own] = _signed_lognormal(rng, int(own.sum()), generic_effect, 1.0)
    base = np.zeros((n_compounds, n_genes))
    on = rng.random((n_compounds, n_genes)) < _SPECIFIC_FRACTION
    base[on] = _signed_lognormal(rng, int(on.sum()), shared_effect, 0.2)
    specific = np.empty((n_compounds, n_contexts, n_genes), dtype=np.float32)
    for k in range(n_contexts):
        keep = rng.random((n_compounds, n_genes)) < 0.75
        own = (rng.random((n_compounds, n_genes)) < 0.01) & (base == 0)
        sk = base * keep
        sk[own] = _signed_lognormal(rng, int(own.sum()), shared_effect, 0.2)
        specific[:, k] = sk
    ec50 = rng.lognormal(0.0, 1.0, n_compounds)
    return generic, specific, ec50


def _bh_rows(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values within each row of ``p`` (no NaN).

    Ties need no care: the running minimum from the right gives tied p-values the same
    adjusted value whatever their order."""
    n = p.shape[1]
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1)
    q = ranked * (n / np.arange(1, n + 1, dtype=np.float64)).astype(p.dtype)
    q = np.minimum.accumulate(q[:, ::-1], axis=1)[:, ::-1]
    np.minimum(q, 1.0, out=q)
    out = np.empty_like(q)
    np.put_along_axis(out, order, q, axis=1)
    return out


#: Grid of ``s = log1p(|t|)`` on which the two-sided log p-value is interpolated.
_T_GRID_MAX = 1e4
_T_GRID_N = 1 << 16


@functools.lru_cache(maxsize=8)
def _log_p_grid(df: float) -> tuple[np.ndarray, float]:
    from scipy import special

    s = np.linspace(0.0, np.log1p(_T_GRID_MAX), _T_GRID_N)
    with np.errstate(divide="ignore"):
        logp = np.log(2.0 * special.stdtr(df, -np.expm1(s)))
    logp = np.maximum(logp, -745.0)  # below the smallest double: p is 0
    return logp, float((_T_GRID_N - 1) / s[-1])


def two_sided_p(t: np.ndarray, df: float) -> np.ndarray:
    """Two-sided Student-t p-values ``2 P(T_df > |t|)``, as ``float32``.

    Interpolates ``log p`` linearly on a fine grid of ``log1p(|t|)`` (relative error
    below 1e-6; about 20 times faster than :func:`scipy.special.stdtr`); ``|t|`` beyond
    the grid is computed exactly.
    """
    from scipy import special

    logp, inv_h = _log_p_grid(float(df))
    a = np.log1p(np.abs(t, dtype=np.float32)) * np.float32(inv_h)
    i = np.minimum(a.astype(np.int32), _T_GRID_N - 2)
    f = a - i
    lo = logp[i]
    out = np.exp(lo + f * (logp[i + 1] - lo)).astype(np.float32)
    far = np.abs(t) > _T_GRID_MAX
    if far.any():
        out[far] = 2.0 * special.stdtr(df, -np.abs(t[far].astype(np.float64)))
    return out


def _effect_layers(
    logfc: np.ndarray,
    sd: np.ndarray,
    unscaled: float,
    df: float,
    ave: np.ndarray,
) -> dict[str, np.ndarray]:
    """limma-like ``float32`` layers of contrasts with estimated residual SD ``sd``."""
    from scipy import special

    f32 = np.float32
    logfc = logfc.astype(f32, copy=False)
    se = (sd * f32(unscaled)).astype(f32, copy=False)
    t = logfc / se
    p = two_sided_p(t, df)
    q = f32(special.stdtrit(df, 0.975))
    v0 = 4.0  # prior variance ratio of the true effect (B statistic)
    u2 = unscaled * unscaled
    b0 = f32(np.log(0.01 / 0.99) - 0.5 * np.log1p(v0 / u2))
    b1 = f32(0.5 * (v0 / u2) / (1 + v0 / u2))
    return {
        "logFC": logfc,
        "t": t,
        "P.Value": p,
        "adj.P.Value.within_one_contrast": _bh_rows(p),
        "adj.P.Value.across_all_contrasts": _bh_rows(p.reshape(1, -1)).reshape(p.shape),
        "CI.L": logfc - q * se,
        "CI.R": logfc + q * se,
        "AveExpr": ave.astype(f32)[None, :] + f32(0.5) * logfc,
        "B": b0 + b1 * t * t,
        "stdev.unscaled": np.full(logfc.shape, unscaled, dtype=f32),
        "stdev.scaled": se,
    }


def _write_release(
    path: Path, layers: dict[str, np.ndarray], obs: pd.DataFrame, var: pd.DataFrame
) -> None:
    import anndata as ad

    adata = ad.AnnData(obs=obs, var=var, layers=layers)
    adata.uns["pipeline"] = "perturbridge.simulate.agreement"
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)


def _names(d: int, i: int) -> tuple[str, str]:
    """Dataset-specific compound name and upstream id (they differ across datasets on
    purpose: only the InChIKey links them)."""
    style = d % 3
    if style == 0:
        return f"simcpd-{i:04d}", f"D{d}-{i:04d}"
    if style == 1:
        return f"SIMCPD{i:04d}", f"BRD-S{i:08d}"
    return f"SimCpd {i}", f"SC{d}{i:05d}"


@dataclass(frozen=True)
class AgreementDesign:
    """What :func:`simulate_agreement_store` simulates.

    Parameters
    ----------
    n_datasets, n_contexts, n_compounds, doses, times, n_genes
        The design: every dataset measures every compound × context × dose × time
        (``n_contexts * n_compounds * len(doses) * len(times)`` conditions per dataset).
    n_replicates, n_controls
        Replicates of each condition and of its vehicle.
    distortion
        Assay distortions: gene-wise gain and nonlinearity, condition-level jitter,
        dataset-specific noise and gene coverage.
    shared_effect, generic_effect
        Median magnitude (log2) of the compound-specific effect and of the generic
        context response at full dose weight.
    gain_jitter
        SD (log scale) of the condition-level multiplicative jitter (distortion on).
    noise
        Replicate noise SD (log2) of the first dataset.
    separate
        Also write separate-mode files (one contrast per replicate).
    """

    n_datasets: int = 3
    n_contexts: int = 4
    n_compounds: int = 40
    doses: Sequence[float] = (0.1, 1.0, 10.0)
    times: Sequence[float] = (24.0,)
    n_genes: int = 978
    n_replicates: int = 3
    n_controls: int = 6
    distortion: bool = True
    shared_effect: float = 0.7
    generic_effect: float = 1.5
    gain_jitter: float = 1.2
    noise: float = 0.15
    separate: bool = True


def write_agreement_release(
    root: str | os.PathLike[str],
    design: AgreementDesign | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
) -> AgreementTruth:
    """Write the release-layout DE files of a simulated multi-assay compendium.

    Files go to ``<root>/<dataset>/group_rep/<context>_de.h5ad`` (and ``separate_rep``),
    one per dataset × context, with ``float32`` layers. ``design`` and ``seed`` as in
    :func:`simulate_agreement_store`. Returns the planted truth.
    """
    sim = design or AgreementDesign()
    n_datasets, n_contexts, n_compounds = sim.n_datasets, sim.n_contexts, sim.n_compounds
    doses, times, n_genes = sim.doses, sim.times, sim.n_genes
    n_replicates, n_controls, noise = sim.n_replicates, sim.n_controls, sim.noise
    distortion, gain_jitter, separate = sim.distortion, sim.gain_jitter, sim.separate
    shared_effect, generic_effect = sim.shared_effect, sim.generic_effect
    for name, value in (("n_datasets", n_datasets), ("n_contexts", n_contexts),
                        ("n_compounds", n_compounds), ("n_genes", n_genes),
                        ("n_replicates", n_replicates), ("n_controls", n_controls)):  # fmt: skip
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, found {value!r}")
    if n_datasets > 26:
        raise ValueError(f"n_datasets must be <= 26, found {n_datasets}")
    doses_t = tuple(float(x) for x in doses)
    times_t = tuple(float(x) for x in times)
    if not doses_t or min(doses_t) <= 0:
        raise ValueError(f"doses must be positive µM values, found {doses_t!r}")
    if not times_t or min(times_t) <= 0:
        raise ValueError(f"times must be positive hours, found {times_t!r}")
    if separate and n_replicates < 2:
        raise ValueError(f"separate mode needs n_replicates >= 2, found {n_replicates}")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise ValueError(
            f"release folder {root} is not empty ({sorted(p.name for p in root.iterdir())[:5]}"
            "); give a new or empty folder so that no stale file is imported"
        )

    rng = np.random.default_rng(seed)
    generic, specific, ec50 = _plant(
        rng,
        n_contexts=n_contexts,
        n_compounds=n_compounds,
        n_genes=n_genes,
        shared_effect=shared_effect,
        generic_effect=generic_effect,
    )
    datasets = tuple(f"sim_{chr(ord('a') + d)}" for d in range(n_datasets))
    contexts = tuple(f"SIMCL{k + 1:02d}" for k in range(n_contexts))
    keys = tuple(sim_inchikey(i) for i in range(n_compounds))
    genes = np.array([f"SIMG{g + 1:05d}" for g in range(n_genes)])
    ave_base = rng.normal(7.0, 2.0, n_genes)

    gain = np.ones((n_datasets, n_genes))
    gamma = np.ones((n_datasets, n_genes))
    measured = np.ones((n_datasets, n_genes), dtype=bool)
    sigma = np.full((n_datasets, n_genes), float(noise))
    if distortion:
        for d in range(n_datasets):
            gain[d] = rng.lognormal(0.0, _GAIN_SD, n_genes)
            gamma[d] = rng.uniform(*_GAMMA_RANGE, n_genes)
            sigma[d] = noise * _NOISE_FACTORS[d % len(_NOISE_FACTORS)]
            sigma[d] *= rng.lognormal(0.0, 0.3, n_genes)
            if d == 1:
                keep = np.sort(rng.choice(n_genes, round(_SUBSET_COVERAGE * n_genes), False))
                measured[d] = False
                measured[d, keep] = True

    # condition grid of one context: compound-major, then dose, then time
    n_dt = len(doses_t) * len(times_t)
    ci = np.repeat(np.arange(n_compounds), n_dt)
    dose_col = np.tile(np.repeat(np.asarray(doses_t), len(times_t)), n_compounds)
    time_col = np.tile(np.asarray(times_t), n_compounds * len(doses_t))
    f32 = np.float32
    weight = (_dose_weight(ec50[ci], dose_col) * _time_weight(time_col)).astype(f32)
    df_res = float(n_replicates + n_controls - 2)
    df_tot = df_res + _PRIOR_DF

    jobs = [(d, k) for d in range(n_datasets) for k in range(n_contexts)]
    for d, k in track(jobs, description="simulate", enabled=progress):
        # one generator per file: files do not depend on the order they are made in
        frng = np.random.default_rng([seed, 1 + d, k])
        cols = np.flatnonzero(measured[d])
        u = (specific[ci, k][:, cols] + generic[k, cols].astype(f32)) * weight[:, None]
        if distortion:
            u *= np.exp(frng.standard_normal(u.shape, dtype=f32) * f32(gain_jitter))
            u = np.sign(u) * np.abs(u) ** gamma[d, cols].astype(f32)
            u *= gain[d, cols].astype(f32)
        sig = sigma[d, cols].astype(f32)[None, :]
        n = u.shape[0]
        e_c = frng.standard_normal(u.shape, dtype=f32) * (sig / f32(np.sqrt(n_controls)))
        # moderated residual SD (the same for a condition's group and separate rows)
        s2 = frng.standard_gamma(df_res / 2, u.shape, dtype=f32) * f32(2.0 / df_res)
        sd = sig * np.sqrt((f32(_PRIOR_DF) + f32(df_res) * s2) / f32(df_tot))
        del s2
        ctx = contexts[k]
        src = [_names(d, i) for i in range(n_compounds)]
        label = np.array([s[0] for s in src], dtype=object)[ci]
        source_id = np.array([s[1] for s in src], dtype=object)[ci]
        cond = [
            f"{ctx}:{sid}:{x:g}uM:{t:g}h"
            for sid, x, t in zip(source_id, dose_col, time_col, strict=True)
        ]
        control = [f"{ctx}:DMSO:{t:g}h" for t in time_col]
        obs = pd.DataFrame(
            {
                "cell_type": ctx,
                "perturbagen": source_id,
                "perturbagen_name": label,
                "compound_inchikey": np.asarray(keys, dtype=object)[ci],
                "compound_parent_inchikey": np.asarray(keys, dtype=object)[ci],
                "pubchem_cid": (990_000_000 + ci).astype(np.int64),
                "pert_dose_uM": dose_col,
                "pert_time_h": time_col,
                "is_control": False,
            },
            index=pd.Index([f"{c} - {v}" for c, v in zip(cond, control, strict=True)]),
        )
        var = pd.DataFrame({"symbol": [f"SIM{g + 1}" for g in cols]}, index=genes[cols])
        if separate:
            reps = u[None] + frng.standard_normal((n_replicates, *u.shape), dtype=f32) * sig
            reps -= e_c
            logfc = reps.mean(axis=0)
        else:
            logfc = u + frng.standard_normal(u.shape, dtype=f32) * (
                sig / f32(np.sqrt(n_replicates))
            )
            logfc -= e_c
        unscaled = float(np.sqrt(1.0 / n_replicates + 1.0 / n_controls))
        layers = _effect_layers(logfc, sd, unscaled, df_tot, ave_base[cols])
        base = root / datasets[d]
        _write_release(base / "group_rep" / f"{ctx}_de.h5ad", layers, obs, var)
        del layers, logfc
        if separate:
            r_idx = np.tile(np.arange(n_replicates), n)
            sep_obs = obs.iloc[np.repeat(np.arange(n), n_replicates)].copy()
            sep_obs["condition"] = np.repeat(np.asarray(cond, dtype=object), n_replicates)
            sep_obs["replicate"] = [f"r{r + 1}" for r in r_idx]
            sep_obs.index = pd.Index(
                [
                    f"{c}:r{r + 1} - {v}"
                    for c, r, v in zip(
                        sep_obs["condition"], r_idx, np.repeat(control, n_replicates),
                        strict=True,
                    )
                ]
            )  # fmt: skip
            sep_lfc = reps.transpose(1, 0, 2).reshape(n * n_replicates, -1)
            sep_sd = np.repeat(sd, n_replicates, axis=0)
            unscaled_sep = float(np.sqrt(1.0 + 1.0 / n_controls))
            layers = _effect_layers(sep_lfc, sep_sd, unscaled_sep, df_tot, ave_base[cols])
            _write_release(base / "separate_rep" / f"{ctx}_de.h5ad", layers, sep_obs, var)
            del layers, reps, sep_lfc, sep_sd
    return AgreementTruth(
        genes=genes,
        datasets=datasets,
        contexts=contexts,
        compounds=keys,
        doses=doses_t,
        times=times_t,
        generic=generic,
        specific=specific,
        ec50=ec50,
        gain=gain,
        gamma=gamma,
        measured=measured,
        noise=sigma,
    )


def simulate_agreement_store(
    out: str | os.PathLike[str],
    design: AgreementDesign | None = None,
    *,
    seed: int = 0,
    release_dir: str | os.PathLike[str] | None = None,
    truth: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Path:
    """Simulate a multi-assay compendium and import it into a store at ``out``.

    See the module docstring for the model. Datasets are named ``sim_a``, ``sim_b``, …;
    contexts ``SIMCL01``, …; genes ``SIMG00001``, …; compounds have InChIKey-shaped ids
    (:func:`sim_inchikey`, the ``compound_id`` of the catalog) and a fake PubChem CID
    ``990000000 + i``, with different names and upstream ids in each dataset.

    Parameters
    ----------
    out
        The store folder (new, empty, or an earlier store: it is rewritten).
    design
        What is simulated (:class:`AgreementDesign`; default: its defaults).
    seed
        Seed of everything random.
    release_dir
        Write (and keep) the release files in this folder; default: a temporary folder,
        removed after the import.
    truth
        Also write the planted biology (:class:`AgreementTruth`) to this ``.npz`` file.
    progress
        Show progress bars.

    Returns
    -------
    pathlib.Path
        The store path.
    """
    own_root = release_dir is None
    if release_dir is None:
        root = Path(tempfile.mkdtemp(prefix="pb-agreement-sim-"))
    else:
        root = Path(release_dir)
    try:
        planted = write_agreement_release(root, design, seed=seed, progress=progress)
        store = Path(out)
        import_release(root, store, progress=progress)
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    if truth is not None:
        planted.save(truth)
    logger.info("simulated agreement store %s: %s", store, planted.datasets)
    return store
