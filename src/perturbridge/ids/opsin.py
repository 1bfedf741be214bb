"""Systematic (IUPAC, CAS index) names → structures with OPSIN, when it is installed.

OPSIN (Open Parser for Systematic IUPAC Nomenclature) ships in Debian as
``libopsin-java`` (``/usr/share/java/opsin*.jar``) and runs on any Java runtime. It is
never a requirement: :func:`opsin_status` says whether it can be used here and why not,
and the compound resolver asks it only about names that nothing else resolved and that
look systematic (:func:`looks_systematic`). It runs locally, without a network.

Examples
--------
>>> jar, why = opsin_status()  # doctest: +SKIP
>>> opsin_smiles(["2,2-dichloroacetic acid"])  # doctest: +SKIP
['OC(=O)C(Cl)Cl']
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["OPSIN_JARS", "looks_systematic", "opsin_smiles", "opsin_status"]

#: Where Debian's ``libopsin-java`` puts its jar.
OPSIN_JARS: Final = "/usr/share/java/opsin*.jar"
_LOCANT = re.compile(r"\d[',]?\d*-|\(\d|\[\d|,\d")


def opsin_status(pattern: str = OPSIN_JARS) -> tuple[Path | None, str]:
    """``(jar, "")`` when OPSIN and a ``java`` are installed, else ``(None, why)``."""
    base = Path(pattern).parent
    jars = sorted(base.glob(Path(pattern).name)) if base.is_dir() else []
    if not jars:
        return None, f"OPSIN is not installed (no {pattern}; Debian package libopsin-java)"
    if shutil.which("java") is None:
        return None, f"OPSIN is at {jars[-1]} but no java is on PATH (a headless JRE)"
    return jars[-1], ""


def looks_systematic(name: str) -> bool:
    """A name with locants (``2,2-dichloro``, ``(3-fluorobenzyl)``): worth asking OPSIN."""
    return len(name) >= 8 and _LOCANT.search(name) is not None


def opsin_smiles(
    names: Sequence[str], *, jar: Path | None = None, timeout: float = 120.0
) -> list[str | None]:
    """SMILES of each name (``None`` where OPSIN cannot parse it), in one OPSIN run.

    Raises
    ------
    RuntimeError
        If OPSIN is not available, fails, or answers with another number of lines.
    """
    if jar is None:
        jar, why = opsin_status()
        if jar is None:
            raise RuntimeError(why)
    if not names:
        return []
    text = "".join(n.replace("\n", " ").strip() + "\n" for n in names)
    try:
        proc = subprocess.run(
            ["java", "-jar", str(jar), "-osmi"],
            input=text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeError(f"OPSIN ({jar}) did not run: {err}") from err
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != len(names):
        raise RuntimeError(
            f"OPSIN ({jar}) exited {proc.returncode} with {len(lines)} lines for "
            f"{len(names)} names: {proc.stderr.strip()[:300]}"
        )
    return [line.strip() or None for line in lines]
