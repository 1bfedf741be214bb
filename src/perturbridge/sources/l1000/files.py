"""The files of an L1000 level 3 dataset: explicit paths, or a GEO series folder + phase."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._tables import require_file

__all__ = ["GEO_SERIES", "L1000Files", "L1000Tables", "find_geo_files", "locate_files"]

logger = logging.getLogger(__name__)

#: GEO series of each L1000 phase: accession and the prefix of every file name.
GEO_SERIES: dict[int, str] = {1: "GSE92742", 2: "GSE70138"}
_GEO_PREFIX = {p: f"{acc}_Broad_LINCS_" for p, acc in GEO_SERIES.items()}


@dataclass(frozen=True)
class L1000Tables:
    """The metadata tables of an L1000 level 3 ingest, given explicitly (``None``: use the
    GCT(X)'s own metadata, or find the table in the GEO folder). The fields are also
    plan keys and ``--set`` names of the ``l1000`` source."""

    #: instance metadata (TSV, or CSV by extension) keyed by ``inst_id``
    inst_info: str | os.PathLike[str] | None = None
    #: GEO ``gene_info`` (``pr_gene_id, pr_gene_symbol, pr_is_lm, pr_is_bing``)
    gene_info: str | os.PathLike[str] | None = None
    #: GEO ``cell_info`` and ``pert_info`` (optional)
    cell_info: str | os.PathLike[str] | None = None
    pert_info: str | os.PathLike[str] | None = None


@dataclass(frozen=True)
class L1000Files:
    """The files of one L1000 level 3 ingest (``None``: not given)."""

    level3: Path
    inst_info: Path | None = None
    gene_info: Path | None = None
    cell_info: Path | None = None
    pert_info: Path | None = None
    phase: int | None = None

    def inputs(self) -> list[Path]:
        return [
            p
            for p in (self.level3, self.inst_info, self.gene_info, self.cell_info, self.pert_info)
            if p is not None
        ]


_GEO_KINDS: dict[str, tuple[str, bool]] = {
    # kind: (glob after the series prefix, required)
    "level3": ("Level3*.gctx", True),
    "inst_info": ("inst_info*.txt*", True),
    "gene_info": ("gene_info*.txt*", True),
    "cell_info": ("cell_info*.txt*", False),
    "pert_info": ("pert_info*.txt*", False),
}


def _phase_of(phase: Any) -> int | None:
    if phase is None:
        return None
    if isinstance(phase, bool) or str(phase) not in ("1", "2"):
        raise ValueError(
            f"phase must be 1 (GSE92742) or 2 (GSE70138), found {phase!r}",
        )
    return int(phase)


def find_geo_files(folder: str | os.PathLike[str], *, phase: int | None = None) -> L1000Files:
    """Find the files of an L1000 GEO series in ``folder`` by their GEO names.

    Parameters
    ----------
    folder
        Folder holding the (decompressed) level 3 GCTX and the info tables, e.g.
        ``GSE92742_Broad_LINCS_Level3_INF_mlr12k_n1319138x12328.gctx``,
        ``GSE92742_Broad_LINCS_inst_info.txt``, ``…_gene_info.txt``, ``…_cell_info.txt``,
        ``…_pert_info.txt`` (phase II names carry a date, e.g. ``…_2017-03-06``).
    phase
        1 (GSE92742) or 2 (GSE70138); found from the file names when the folder holds
        one series only.

    Raises
    ------
    FileNotFoundError
        If a required file (level 3 GCTX, inst_info, gene_info) is absent, naming the
        pattern; a ``.gctx.gz`` found instead must be decompressed first.
    ValueError
        If the folder holds both series and ``phase`` is not given, or a pattern matches
        several files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"L1000 GEO folder not found: {root}")
    ph = _phase_of(phase)
    if ph is None:
        present = [p for p, pre in _GEO_PREFIX.items() if any(root.glob(f"{pre}*"))]
        if len(present) != 1:
            found = "both" if present else "neither"
            raise ValueError(
                f"{root}: holds {found} of the L1000 GEO series "
                f"{', '.join(f'{a} (phase {p})' for p, a in GEO_SERIES.items())}; pass phase=1 or 2"
            )
        ph = present[0]
    prefix = _GEO_PREFIX[ph]
    found_paths: dict[str, Path | None] = {}
    for kind, (pattern, required) in _GEO_KINDS.items():
        hits = sorted(
            p
            for p in root.glob(prefix + pattern)
            if p.is_file() and "delta_landmark" not in p.name and not p.name.endswith(".gctx.gz")
        )
        if not hits:
            if kind == "level3" and any(root.glob(prefix + "Level3*.gctx.gz")):
                raise FileNotFoundError(
                    f"{root}: found the level 3 GCTX only compressed ({prefix}Level3*.gctx.gz); "
                    "decompress it first (gunzip): a GCTX is read in place, lazily"
                )
            if required:
                raise FileNotFoundError(
                    f"L1000 phase {ph} {kind} not found in {root}: no file matches "
                    f"{prefix + pattern!r}"
                )
            logger.info("%s: no %s file (%s); skipped", root, kind, prefix + pattern)
            found_paths[kind] = None
            continue
        if len(hits) > 1:
            raise ValueError(
                f"{root}: {len(hits)} files match {prefix + pattern!r}: "
                f"{[h.name for h in hits[:5]]}; pass {kind}= explicitly"
            )
        found_paths[kind] = hits[0]
    level3 = found_paths.pop("level3")
    assert level3 is not None  # required above
    return L1000Files(level3=level3, phase=ph, **found_paths)


def locate_files(
    level3: str | os.PathLike[str] | None,
    *,
    folder: str | os.PathLike[str] | None,
    phase: Any,
    tables: dict[str, str | os.PathLike[str] | None],
) -> L1000Files:
    ph = _phase_of(phase)
    if folder is not None:
        base = find_geo_files(folder, phase=ph)
        ph = base.phase
    elif level3 is None:
        raise ValueError("pass level3= (a .gctx or .gct file) or folder= with phase=")
    else:
        base = L1000Files(level3=Path(level3))
    given: dict[str, Path | None] = {}
    for kind, path in tables.items():
        if path is not None:
            given[kind] = require_file(path, what=f"L1000 {kind} table")
        else:
            given[kind] = getattr(base, kind)
    lvl3 = Path(level3) if level3 is not None else base.level3
    if ph is None:
        for p, acc in GEO_SERIES.items():
            if lvl3.name.startswith(acc):
                ph = p
    return L1000Files(level3=lvl3, phase=ph, **given)
