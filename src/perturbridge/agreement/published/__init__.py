"""The ``published`` agreement profile: the published analysis's definitions, exactly.

See ``docs/agreement.md`` ("The published profile") for every definition.
"""

from .inputs import ReleaseData, read_release
from .run import PublishedOptions, PublishedResult, run_published, write_published

__all__ = [
    "PublishedOptions",
    "PublishedResult",
    "ReleaseData",
    "read_release",
    "run_published",
    "write_published",
]
