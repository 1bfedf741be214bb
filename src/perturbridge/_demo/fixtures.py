"""The simulated upstream files of every source family, and how each reader takes them.

One table for both demos: :data:`FIXTURES` maps a source name (as the source registry
knows it, :func:`perturbridge.sources.get_source`) to the writer of its simulated
upstream files and the reader arguments those files fill. The demo of every family
reads them with the registered adapter's reader; the demo compendium writes them into a
plan. L1000 and the generic adapter are written by each demo itself (their sizes and
truth tables differ between the two demos).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..simulate import upstream, upstream_sc
from ..sources import source_names

__all__ = ["FAMILIES", "FIXTURES", "Fixture", "check_families"]

#: The source families of the demos, in the order they run.
FAMILIES: tuple[str, ...] = (
    "l1000",
    "op3",
    "drugseq_moabox",
    "vcpi",
    "gdpx2",
    "sciplex",
    "tahoe",
    "cigs",
    "dilimap",
    "generic",
)


@dataclass(frozen=True)
class Fixture:
    """A family's simulated upstream files: ``write(folder, seed=...)`` writes them and
    returns the fixture (with ``files`` and ``recovery``); ``inputs(fixture, folder)``
    are the reader's arguments that name those files."""

    write: Callable[..., Any]
    inputs: Callable[[Any, Path], dict[str, Any]]


def _files(*keys: str) -> Callable[[Any, Path], dict[str, Any]]:
    """Reader arguments named as the fixture's files."""

    def inputs(fx: Any, folder: Path) -> dict[str, Any]:
        return {key: fx.files[key] for key in keys}

    return inputs


def _moabox(fx: Any, folder: Path) -> dict[str, Any]:
    files: Mapping[str, Path] = fx.files
    counts = [files[k] for k in sorted(files) if k.startswith("counts_")]
    named = {k: files[k] for k in ("metadata", "compounds", "robust_controls", "gene_mapping")}
    return {**named, "counts": counts}


def _folder(*keys: str) -> Callable[[Any, Path], dict[str, Any]]:
    """The folder of the upstream files, plus the named fixture files."""

    def inputs(fx: Any, folder: Path) -> dict[str, Any]:
        return {"folder": folder, **{key: fx.files[key] for key in keys}}

    return inputs


#: The families written from :mod:`perturbridge.simulate.upstream` and
#: :mod:`~perturbridge.simulate.upstream_sc`, by source name.
FIXTURES: dict[str, Fixture] = {
    "op3": Fixture(upstream.write_op3, _files("h5ad")),
    "drugseq_moabox": Fixture(upstream.write_moabox, _moabox),
    "vcpi": Fixture(upstream.write_vcpi, _files("metadata", "counts")),
    "gdpx2": Fixture(upstream.write_gdpx2, _files("metadata", "counts")),
    "sciplex": Fixture(upstream_sc.write_sciplex, _files("h5ad")),
    "tahoe": Fixture(upstream_sc.write_tahoe, _folder("obs_parquet")),
    "cigs": Fixture(upstream_sc.write_cigs, _folder()),
    "dilimap": Fixture(upstream_sc.write_dilimap, _files("h5ad")),
}


def check_families(families: tuple[str, ...], known: Mapping[str, Any], *, what: str) -> None:
    """Raise ``ValueError`` naming the requested families without a demo dataset (or
    without a registered source adapter)."""
    unknown = [f for f in families if f not in known or f not in source_names()]
    if unknown:
        raise ValueError(f"{what} {unknown}; available: {list(known)}")
