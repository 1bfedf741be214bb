"""The syntax of compound identifiers: Broad ids and CAS registry numbers.

Shared by the reference parsers (:mod:`perturbridge.ids.parsers_compounds`) and the
resolver's query kinds (:mod:`perturbridge.ids.compound_index`).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["BRD_PATTERN", "CAS_PATTERN", "brd_prefix", "is_valid_cas", "normalize_brd"]

#: A Broad id with or without the batch suffix (``BRD-K12345678-001-01-1``); the
#: separators may also be a space, an underscore or missing (``BRD K12345678``).
BRD_PATTERN: Final[re.Pattern[str]] = re.compile(
    r"^BRD[-_ ]?([A-Z])(\d{8})(?:[-_ ](\d{3})[-_ ](\d{2})[-_ ](\d))?$", re.IGNORECASE
)
#: A CAS registry number (the check digit is verified by :func:`is_valid_cas`).
CAS_PATTERN: Final[re.Pattern[str]] = re.compile(r"^(\d{2,7})-(\d{2})-(\d)$")


def is_valid_cas(value: str) -> bool:
    """Whether ``value`` is a CAS number with a correct check digit.

    Examples
    --------
    >>> is_valid_cas("50-02-2"), is_valid_cas("50-02-3")
    (True, False)
    """
    m = CAS_PATTERN.match(value.strip())
    if m is None:
        return False
    digits = (m.group(1) + m.group(2))[::-1]
    return sum((i + 1) * int(d) for i, d in enumerate(digits)) % 10 == int(m.group(3))


def brd_prefix(value: str) -> str | None:
    """The 13-character compound part of a Broad id, upper case (``None`` if not one).

    Examples
    --------
    >>> brd_prefix("BRD-K76022557-003-28-9"), brd_prefix("brd k76022557")
    ('BRD-K76022557', 'BRD-K76022557')
    """
    m = BRD_PATTERN.match(value.strip())
    return f"BRD-{m.group(1).upper()}{m.group(2)}" if m else None


def normalize_brd(value: str) -> str | None:
    """A Broad id in its canonical spelling (upper case, hyphens), batch kept if given.

    Examples
    --------
    >>> normalize_brd("brd_k76022557 003 28 9")
    'BRD-K76022557-003-28-9'
    """
    m = BRD_PATTERN.match(value.strip())
    if m is None:
        return None
    head = f"BRD-{m.group(1).upper()}{m.group(2)}"
    return head if m.group(3) is None else f"{head}-{m.group(3)}-{m.group(4)}-{m.group(5)}"
