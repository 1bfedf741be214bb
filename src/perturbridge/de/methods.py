"""The DE methods as data, and :func:`run`, the one entry point of differential expression.

Each method is registered once as a :class:`MethodMeta` (its name, the value kind it
accepts, what it does, the function that runs it); :func:`list_methods` lists them.
:func:`run` picks the method (``auto``: limma-voom for counts, limma-trend for log
expression, from ``samples.uns["perturbridge"]["value_kind"]``) and the engine
(perturbridge's own, or R limma through :func:`~perturbridge.de.r_limma.limma_r`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anndata as ad

from ..schema import (
    DE_ENGINES,
    DE_METHODS,
    VALUE_KINDS,
    DEEngine,
    DEMethod,
    ReplicateMode,
    ValueKind,
    validate_samples,
)
from ._effects import DEResult
from .limma import limma_trend
from .options import DEOptions
from .r_limma import limma_r
from .voom import limma_voom

__all__ = ["METHODS", "MethodMeta", "list_methods", "method_for", "run"]


@dataclass(frozen=True)
class MethodMeta:
    """One DE method: ``name`` (as :func:`run` takes it), ``label`` (as Effects record
    it), the ``value_kind`` of Samples it accepts, a one-line ``description`` and the
    function that runs it with perturbridge's engine."""

    name: str
    label: str
    value_kind: ValueKind
    description: str
    func: Callable[..., DEResult]


#: The DE methods, by name.
METHODS: dict[str, MethodMeta] = {
    meta.name: meta
    for meta in (
        MethodMeta(
            "trend",
            "limma-trend",
            "log_expression",
            "lmFit → contrasts.fit → eBayes(trend=TRUE, robust=TRUE) on log expression",
            limma_trend,
        ),
        MethodMeta(
            "voom",
            "limma-voom",
            "counts",
            "filterByExpr → TMM → voom → weighted lmFit → contrasts.fit → "
            "eBayes(robust=TRUE) on counts",
            limma_voom,
        ),
    )
}


def list_methods() -> tuple[MethodMeta, ...]:
    """The registered DE methods, in registration order."""
    return tuple(METHODS.values())


def method_for(samples: ad.AnnData, method: DEMethod = "auto") -> MethodMeta:
    """The method :func:`run` uses for ``samples``: as named, or for ``"auto"`` the one
    that accepts the Samples' value kind."""
    if method not in DE_METHODS:
        raise ValueError(f"DE method must be one of {list(DE_METHODS)}, got {method!r}")
    if method != "auto":
        return METHODS[method]
    kind = samples.uns.get("perturbridge", {}).get("value_kind")
    if kind not in VALUE_KINDS:
        validate_samples(samples)  # raises, naming uns['perturbridge']['value_kind']
    return next(m for m in METHODS.values() if m.value_kind == kind)


def run(
    samples: ad.AnnData,
    *,
    method: DEMethod = "auto",
    engine: DEEngine = "python",
    mode: ReplicateMode = "group",
    control_keys: Sequence[str] | None = None,
    options: DEOptions | None = None,
    progress: bool = False,
) -> DEResult:
    """Effects of every treated condition against its matched vehicle.

    ``run(samples, *, method="auto", engine="python", mode="group", control_keys=None,
    options=None, progress=False) -> DEResult``

    Parameters
    ----------
    samples
        Samples AnnData (counts or log expression, as ``uns["perturbridge"]
        ["value_kind"]`` says).
    method
        ``"auto"`` (limma-voom for counts, limma-trend for log expression), ``"trend"``
        or ``"voom"``; see :func:`list_methods`.
    engine
        ``"python"`` (perturbridge's engine) or ``"r"`` (R limma/edgeR through
        ``Rscript``; needs R with limma, edgeR and statmod).
    mode
        ``"group"``: one contrast per condition, replicates pooled; ``"separate"``: one
        contrast per treated sample.
    control_keys
        Further ``obs`` columns a treated condition must share with its vehicle;
        default: those the source adapter declared, if any.
    options
        Design, voom, eBayes and sample quality weight options
        (:class:`~perturbridge.de.DEOptions`; quality weights:
        :mod:`perturbridge.de.quality`).
    progress
        Show a progress bar over fits.

    Returns
    -------
    DEResult
        The Effects, the ledger of what was not estimated and per-fit diagnostics.

    Examples
    --------
    >>> from perturbridge import de  # doctest: +SKIP
    >>> opts = de.DEOptions(stdev_scaled=True)  # doctest: +SKIP
    >>> res = de.run(samples, mode="separate", options=opts)  # doctest: +SKIP
    """
    meta = method_for(samples, method)
    if engine == "python":
        return meta.func(
            samples, mode=mode, control_keys=control_keys, options=options, progress=progress
        )
    if engine == "r":
        return limma_r(
            samples,
            method="voom" if meta.name == "voom" else "trend",
            mode=mode,
            control_keys=control_keys,
            options=options,
            progress=progress,
        )
    raise ValueError(f"DE engine must be one of {list(DE_ENGINES)}, got {engine!r}")
