"""The ``published`` agreement profile: the published analysis's definitions, exactly.

See ``docs/agreement.md`` ("The published profile") for every definition.
"""

from .inputs import ReleaseData, read_release
from .run import (
    PublishedOptions,
    PublishedResult,
    read_published,
    run_published,
    write_published,
)

__all__ = [
    "PublishedOptions",
    "PublishedResult",
    "ReleaseData",
    "read_published",
    "read_release",
    "run_published",
    "write_published",
]
