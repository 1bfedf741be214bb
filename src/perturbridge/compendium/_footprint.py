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

Rounding: a float32 value differs from the float64 statistic by at most 2^-24 of its
magnitude (half a unit in the last place of a 24-bit significand); ``-log10(p)``
decoded back to float32 ``p`` differs by at most ``(2 * ln(10) * -log10(p) + 6) * 2^-24``
relative (for p = 1e-10, 3e-6). See ``docs/compendium.md`` ("Footprint").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "NEG_LOG10",
    "P_FLOAT32_MIN",
    "decode_p",
    "encode_p",
    "is_p_layer",
    "storage_effects",
]

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
