"""Progress bars that the CLI turns on and library calls leave off by default."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["track"]


def track(
    items: Sequence[T] | Iterable[T], *, description: str, enabled: bool, total: int | None = None
) -> Iterator[T]:
    """Iterate ``items``, showing a rich progress bar when ``enabled``."""
    if not enabled:
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, transient=True)
