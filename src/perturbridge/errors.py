"""Error and warning classes of perturbridge.

Every error a user can meet at a public boundary is one of these (or a plain
``ValueError``/``TypeError``/``KeyError``), with a message that says what was
expected, what was found and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "FormatError",
    "LockError",
    "PerturbridgeError",
    "PerturbridgeWarning",
    "SchemaError",
    "UnitError",
]


class PerturbridgeError(Exception):
    """Base class of the errors raised by perturbridge."""


class SchemaError(PerturbridgeError, ValueError):
    """A table or AnnData does not follow the perturbridge schema.

    Parameters
    ----------
    column
        The offending column (or ``"index"``).
    rule
        The rule that was broken, in words.
    offending
        The first offending values or row labels, for the message.
    """

    def __init__(
        self, column: str, rule: str, offending: object = None, *, where: str = ""
    ) -> None:
        self.column = column
        self.rule = rule
        self.offending = offending
        loc = f" in {where}" if where else ""
        msg = f"column {column!r}{loc}: {rule}"
        if offending is not None:
            msg += f"; first offending: {offending}"
        super().__init__(msg)


class FormatError(PerturbridgeError, ValueError):
    """An input file is malformed (truncated, inconsistent header, wrong layout)."""


class UnitError(PerturbridgeError, ValueError):
    """A dose or time unit is unknown or inconsistent."""


class LockError(PerturbridgeError, RuntimeError):
    """Another process holds a lock (a store's writer, a task cache's build).

    The message names the holder (PID, host, start time, command) and what to do;
    ``path`` is the lock file and ``holder`` the holder's record (``None`` when it has
    not written it yet).
    """

    def __init__(
        self, message: str, *, path: str | None = None, holder: dict[str, object] | None = None
    ) -> None:
        self.path = path
        self.holder = holder
        super().__init__(message)


class PerturbridgeWarning(UserWarning):
    """Base class of the warnings issued by perturbridge."""
