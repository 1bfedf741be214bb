"""What people put around a compound name: several names in one cell, batch and dose notes.

These rewrites are tried only for names that the reference does not resolve as given,
so a reference name that contains ``;`` or ``batch`` is never cut:

- :func:`split_names`: a cell with several names joined by ``///`` (the GEO and
  Connectivity Map habit: ``Gefitinib///Iressa``) or ``;`` → the names;
- :func:`strip_notes`: a trailing batch or lot suffix (``-batch1``, ``_batch 2``,
  ``(lot 3)``) or a dose in parentheses (``(50 uM)``, ``[10 µM]``, ``(0.1%)``) → the
  name without it, and a note saying what was removed.

The resolver (:meth:`perturbridge.ids.compounds.CompoundResolver.resolve`) resolves the
parts and combines them: parts that resolve agree → ``resolved`` (the unresolved
parts are named in ``error``); parts that name different compounds → ``ambiguous``
with the candidates of each part.

Examples
--------
>>> split_names("Gefitinib///Iressa")
['Gefitinib', 'Iressa']
>>> strip_notes("Vorinostat-batch2 (50 uM)")
('Vorinostat', "removed 'batch2', '(50 uM)'")
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_names", "strip_notes"]

_SEPARATORS: Final = re.compile(r"\s*(?:///|;)\s*")
_BATCH: Final = re.compile(
    r"(?:[\s_\-]+|(?<=[a-z0-9]))[\(\[]?\s*((?:batch|lot)[\s_\-#]*\d+[a-z]?)\s*[\)\]]?$",
    re.IGNORECASE,
)
_DOSE: Final = re.compile(
    r"\s*(?:,\s*)?([\(\[]\s*\d+(?:\.\d+)?\s*(?:[pnuµμm]?m|[pnuµμm]?g\s*/\s*m?l|%)\s*[\)\]])$",
    re.IGNORECASE,
)


def split_names(name: str) -> list[str] | None:
    """The names of a multi-name cell, or ``None`` when there is only one.

    Empty parts are dropped and repeated parts kept once (in order).
    """
    if "///" not in name and ";" not in name:
        return None
    parts = [p.strip() for p in _SEPARATORS.split(name)]
    parts = list(dict.fromkeys(p for p in parts if p))
    return parts if len(parts) > 1 else None


def strip_notes(name: str) -> tuple[str, str] | None:
    """``(name without trailing batch/dose notes, note)``, or ``None`` when there is none."""
    s = name.strip()
    removed: list[str] = []
    while True:
        m = _BATCH.search(s) or _DOSE.search(s)
        if m is None or m.start() == 0:
            break
        removed.append(m.group(1).strip())
        s = s[: m.start()].rstrip(" -_,")
    if not removed or not s:
        return None
    return s, "removed " + ", ".join(repr(r) for r in reversed(removed))
