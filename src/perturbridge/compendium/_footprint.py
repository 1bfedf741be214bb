"""How effect values are stored: dtypes, p-value encoding, what is written once.

Statistics are computed in float64 (:mod:`perturbridge.de`); only storage narrows them:

- Effects files (task cache and store, ``*_de.h5ad``) have no ``X`` (it was a copy of
  the ``logFC`` layer); every layer is float32, except a p-value layer that holds a
  value below float32's smallest normal number (:data:`P_FLOAT32_MIN`, about 1.2e-38),
  which stays float64 in that file so that tiny p-values neither underflow to 0 nor
  lose digits. Files are chunked, byte-shuffled and gzip-compressed (HDF5's own
  filters: any AnnData or h5py reader opens them unchanged).
- Consolidated arrays (``zarr/<mode>.zarr/<layer>``) are float32, Blosc-zstd
  compressed; p-value layers hold ``-log10(p)`` (array attribute
  ``perturbridge.encoding = "-log10"``), which float32 keeps to 2^-24 relative
  precision down to p = 1e-300 and beyond; readers of the store decode them.

Each value is stored once (store format 3). The store's Effects files
(``effects/<dataset>/<mode>/<context>_de.h5ad``) leave out

- the layers of the consolidated arrays (manifest ``parameters.zarr_layers``; by
  default ``logFC``, ``t``, ``P.Value``, ``adj.P.Value.within_one_contrast``): the
  arrays are their one copy;
- the layers derived exactly from what is stored, when the file carries what the
  derivation needs (our engine's Effects do: ``var``/``varm`` ``s2_post`` and
  ``df_total`` per gene per fit, the fits table ``uns["ebayes_fits"]``, the run's
  ``confint``) and the derivation, checked on every value as the store is written,
  reproduces the file's values within the bounds below:
  ``CI.L``/``CI.R`` = ``logFC ∓ qt((1 + confint) / 2, df_total) * stdev.unscaled *
  sqrt(s2_post)`` (:func:`confidence_limits`), ``stdev.scaled`` = ``stdev.unscaled *
  sqrt(s2_post)`` and ``adj.P.Value.across_all_contrasts`` = BH over every p-value of
  the fit (contrasts × genes the fit tested; :func:`bh_per_fit`).

The file's ``uns["store_layers"]`` names where the others are (``arrays``,
``derived``). :class:`~perturbridge.compendium.store.StoreEffects` is the one reader
that gives a store file back complete; the task cache keeps the complete files.

Rounding: a float32 value differs from the float64 statistic by at most 2^-24 of its
magnitude (half a unit in the last place of a 24-bit significand); ``-log10(p)``
decoded back to float32 ``p`` differs by at most ``(2 * ln(10) * -log10(p) + 6) * 2^-24``
relative (for p = 1e-10, 3e-6). Derived layers, against the float64 statistics of the
engine: ``CI.L``/``CI.R`` and ``stdev.scaled`` within :data:`CI_ULPS` float32 units in
the last place (2^-24 each) of ``max(|logFC|, margin)`` (for ``stdev.scaled``, of
itself), as they are computed in float64 from the float32 ``logFC`` and
``stdev.unscaled``; ``adj.P.Value.across_all_contrasts`` within the decoded-p bound
above at the row's own ``P.Value`` plus 2^-24 (BH is monotone: p-values each within a
relative ``e`` of the true ones give adjusted values within ``e`` of the true ones).
See ``docs/compendium.md`` ("Footprint").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..de.toptable import p_adjust

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "CI_ULPS",
    "NEG_LOG10",
    "P_FLOAT32_MIN",
    "STDEV_SCALED",
    "bh_per_fit",
    "confidence_limits",
    "decode_p",
    "decode_p64",
    "encode_p",
    "is_p_layer",
    "p_bound",
    "storage_effects",
    "t_quantile",
]

#: The optional Effects layer ``stdev.unscaled * sqrt(s2_post)`` (the name
#: :data:`perturbridge.de._effects.STDEV_SCALED` gives it; not imported from there, which
#: would load the DE engine with the store's reader).
STDEV_SCALED = "stdev.scaled"
#: Smallest normal float32: below it float32 loses significant digits (and underflows
#: to 0 under about 1.4e-45).
P_FLOAT32_MIN = float(np.finfo(np.float32).tiny)
#: ``encoding`` of a consolidated array that stores ``-log10`` of p-values.
NEG_LOG10 = "-log10"


def is_p_layer(layer: str) -> bool:
    """True for the layers that hold p-values (``P.Value``, ``adj.P.Val*``, ``adj.P.Value.*``)."""
    return layer == "P.Value" or layer.startswith("adj.P.Val")


def encode_p(p: np.ndarray) -> np.ndarray:
    """``-log10(p)`` as float32 (NaN stays NaN; p = 0 gives +inf)."""
    x = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.log10(x)
    return out.astype(np.float32)


_MINUS_LN10 = np.float32(-np.log(10.0))


def decode_p(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``p`` from :func:`encode_p`'s values, as float32.

    Computed in float32 (``exp(-ln(10) * x)``, vectorized: a 1,000-condition slice of
    20,000 genes decodes in a few hundredths of a second): within
    ``(2 * ln(10) * x + 6) * 2^-24`` relative of the float64 p-value for p above
    float32's smallest normal number (1.2e-38); smaller p-values underflow as float32
    does. ``out``: a float32 array to write into (may be ``x`` itself).
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        y = np.multiply(np.asarray(x, dtype=np.float32), _MINUS_LN10, out=out)
        return np.exp(y, out=y)


def decode_p64(x: np.ndarray) -> np.ndarray:
    """``p`` from :func:`encode_p`'s values, as float64 (no underflow above 1e-308)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.exp(np.asarray(x, dtype=np.float64) * -np.log(10.0))


#: Bound of a derived confidence limit, in float32 units in the last place of
#: ``max(|logFC|, margin)`` (see the module docstring).
CI_ULPS = 4
_ULP32 = 2.0**-24


def p_bound(p: np.ndarray) -> np.ndarray:
    """The relative error bound of a p-value decoded from ``-log10`` float32
    (``(2 * ln(10) * -log10(p) + 6) * 2^-24``), elementwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = -np.log10(np.asarray(p, dtype=np.float64))
    return (2 * np.log(10.0) * np.maximum(x, 0.0) + 6) * _ULP32


def t_quantile(df_total: np.ndarray, *, confint: float) -> np.ndarray:
    """``qt((1 + confint) / 2, df_total)``, elementwise (as the engine computes it)."""
    from scipy import stats

    return np.asarray(stats.t.ppf((1 + confint) / 2, df_total), dtype=np.float64)


def confidence_limits(
    logfc: np.ndarray, scaled: np.ndarray, quantile: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(CI.L, CI.R)`` as limma's ``topTable(confint=)``: ``logFC ∓ quantile *
    stdev.scaled`` with ``quantile`` = :func:`t_quantile` of ``df_total`` (float64;
    broadcast against ``scaled``)."""
    margin = quantile * scaled
    lfc = np.asarray(logfc, dtype=np.float64)
    return lfc - margin, lfc + margin


def bh_per_fit(p: np.ndarray, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """``adj.P.Value.across_all_contrasts``: BH over every p-value of each fit at once
    (rows ``start:stop`` of ``p``; NaN, genes a fit did not test, are left out and stay
    NaN), float64. Rows outside every fit are NaN."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    for a, b in bounds:
        block = p[a:b]
        out[a:b] = p_adjust(block.ravel(), "BH").reshape(block.shape)
    return out


def _storage_dtype(layer: str, values: np.ndarray) -> type[np.floating]:
    if not is_p_layer(layer):
        return np.float32
    v = np.asarray(values, dtype=np.float64)
    tiny = (v > 0) & (v < P_FLOAT32_MIN)
    return np.float64 if bool(tiny.any()) else np.float32


def _narrow(name: str, values: object) -> object:
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f":
        return values  # sparse or non-float layers are written as they are
    return values.astype(_storage_dtype(name, values), copy=False)


def storage_effects(effects: ad.AnnData) -> ad.AnnData:
    """The form of ``effects`` that is written to disk (a new object; the input is kept).

    No ``X`` when it equals the ``logFC`` layer (else ``X`` narrowed like a layer);
    float layers as float32, a p-value layer as float64 when it holds a value float32
    cannot keep (see the module docstring); obs, var and uns unchanged.
    """
    import anndata as ad

    layers = {name: _narrow(name, values) for name, values in effects.layers.items()}
    x = effects.X
    if x is not None and "logFC" in effects.layers:
        lfc = effects.layers["logFC"]
        same = isinstance(x, np.ndarray) and isinstance(lfc, np.ndarray)
        if same and x.shape == lfc.shape and np.array_equal(x, lfc, equal_nan=True):
            x = None
    return ad.AnnData(
        X=_narrow("X", x) if x is not None else None,
        obs=effects.obs.copy(),
        var=effects.var.copy(),
        uns=dict(effects.uns),
        layers=layers,
        obsm=dict(effects.obsm),
        varm=dict(effects.varm),
    )
