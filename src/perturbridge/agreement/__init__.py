"""Agreement diagnostics: how well signatures of the same compound agree, within a
dataset (replicates) and across datasets (see ``docs/agreement.md``).

Pure kernels live in :mod:`.metrics` and :mod:`.bootstrap`; :func:`run_agreement`
computes every table of a compendium store through its public API;
:func:`signature_agreement` handles signatures outside a store. The HTML report is
:func:`perturbridge.report.write_report`.
"""

from .bootstrap import BootstrapCI, cluster_bca, cluster_stratum_means, nested_mean
from .cross import SignatureOptions, cross_pairs, summarize_cross
from .matching import MatchResult, match_conditions
from .metrics import (
    PAIR_METRICS,
    SCORES,
    PairMetric,
    all_gene_spearman,
    deg_spearman,
    direction_agreement,
    list_metrics,
    pair_metrics,
    random_floor,
    rank_rows,
    register_metric,
    retrieval,
    retrieval_scores,
    spearman_rows,
    topk_overlap,
)
from .options import AgreementOptions, CompareOptions, PairingOptions
from .replicate import (
    SignatureAgreement,
    dose_series_agreement,
    replicate_agreement,
    signature_agreement,
)
from .run import AgreementResult, read_agreement, run_agreement
from .signatures import Signatures, load_signatures, zscore_stats

__all__ = [
    "PAIR_METRICS",
    "SCORES",
    "AgreementOptions",
    "AgreementResult",
    "BootstrapCI",
    "CompareOptions",
    "MatchResult",
    "PairMetric",
    "PairingOptions",
    "SignatureAgreement",
    "SignatureOptions",
    "Signatures",
    "all_gene_spearman",
    "cluster_bca",
    "cluster_stratum_means",
    "cross_pairs",
    "deg_spearman",
    "direction_agreement",
    "dose_series_agreement",
    "list_metrics",
    "load_signatures",
    "match_conditions",
    "nested_mean",
    "pair_metrics",
    "random_floor",
    "rank_rows",
    "read_agreement",
    "register_metric",
    "replicate_agreement",
    "retrieval",
    "retrieval_scores",
    "run_agreement",
    "signature_agreement",
    "spearman_rows",
    "summarize_cross",
    "topk_overlap",
    "zscore_stats",
]
