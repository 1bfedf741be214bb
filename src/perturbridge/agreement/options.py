"""The options of the agreement diagnostics, each a frozen dataclass.

- :class:`AgreementOptions`: everything :func:`~perturbridge.agreement.run_agreement`
  computes (matching, DE genes, metrics, baselines, bootstrap);
- :class:`CompareOptions`: how pairs are compared (metrics, the peer baseline, the bootstrap
  and the rows per block), shared by the cross-dataset, replicate and signature
  agreement functions;
- :class:`PairingOptions`: which signatures :func:`~perturbridge.agreement.signature_agreement`
  pairs (the compound column, the strata, adjacency, the dose column).

>>> CompareOptions(metrics=("spearman",), n_boot=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .matching import Identity
from .signatures import DERule, ZScore

__all__ = ["AgreementOptions", "CompareOptions", "PairingOptions"]


@dataclass(frozen=True)
class CompareOptions:
    """How pairs of signatures are compared and summarized.

    Parameters
    ----------
    metrics
        Pair metrics (default: all registered).
    max_peers
        Peers (signatures of other compounds) per pair.
    seed
        The seed of every random choice (peers, pairs, bootstrap).
    n_boot
        Bootstrap draws (0: no intervals).
    confidence
        The level of the intervals.
    chunk_size
        Pairs per block of the metric kernels (memory is bounded by a few
        ``(chunk_size, genes)`` arrays).
    """

    metrics: Sequence[str] | None = None
    max_peers: int = 50
    seed: int = 0
    n_boot: int = 2000
    confidence: float = 0.95
    chunk_size: int = 4096


@dataclass(frozen=True)
class PairingOptions:
    """Which signatures of the same compound are paired.

    Parameters
    ----------
    compound
        The ``obs`` column with the compound identity.
    strata
        ``obs`` columns that define a stratum: pairs are signatures of one compound in
        different strata.
    adjacent
        A numeric column of ``strata``: only pairs with the same values of the other
        strata columns and consecutive values of this one (e.g. a dose series).
    dose
        An ``obs`` column with the dose (µM), used to choose each peer's signature.
    max_pairs_per_compound
        A seeded choice of at most this many pairs per compound (``None``: all).
    id_column
        An ``obs`` column naming each signature (default: ``obs``'s index).
    """

    compound: str = "compound"
    strata: Sequence[str] = ("cell_context", "pert_time_h")
    adjacent: str | None = None
    dose: str | None = None
    max_pairs_per_compound: int | None = 10_000
    id_column: str | None = None


@dataclass(frozen=True)
class AgreementOptions:
    """What :func:`~perturbridge.agreement.run_agreement` computes.

    Parameters
    ----------
    identity, max_log10_dose, min_compounds
        Matching (:func:`~perturbridge.agreement.match_conditions`).
    alpha, lfc_min, de_rule, z_min
        DE genes: ``adj.P.Value.within_one_contrast < alpha`` (and ``|logFC| >
        lfc_min``); rows without p-values use ``|value| >= z_min`` (``de_rule="auto"``).
    zscore
        ``none``, ``dataset`` or ``dataset_context`` per-gene standardisation.
    metrics
        Pair metrics (default: all registered).
    score
        Retrieval score.
    max_peers
        Peers per pair.
    n_boot, seed
        Bootstrap draws (0: no intervals) and the seed of everything random.
    dose_sensitivity
        Also the ``dose_sensitivity`` table (thresholds exact, 2×, 3×, 10×).
    replicates
        Also the within-dataset replicate agreement (separate mode).
    datasets
        Only these datasets.
    """

    identity: Identity = "parent"
    max_log10_dose: float = 1.0
    min_compounds: int = 10
    alpha: float = 0.05
    lfc_min: float | None = None
    zscore: ZScore = "none"
    metrics: Sequence[str] | None = None
    score: Literal["euclidean", "cosine", "spearman"] = "euclidean"
    max_peers: int = 50
    n_boot: int = 2000
    seed: int = 0
    dose_sensitivity: bool = False
    replicates: bool = True
    de_rule: DERule = "auto"
    z_min: float = 2.0
    datasets: Sequence[str] | None = None
