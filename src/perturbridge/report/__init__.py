"""Reports: tables and figures, and one self-contained HTML page a person opens in a
browser (the perturbridge profile in :mod:`.html`, the published profile in
:mod:`.published`).

>>> from perturbridge.report import write_report
>>> write_report("compendium", "report.html", agreement_dir="agreement")  # doctest: +SKIP
"""

from .html import write_report
from .inputs import REPORT_TABLES, read_agreement_tables
from .published import published_figures, write_published_report
from .sections import PUBLISHED_CONTEXT

__all__ = [
    "PUBLISHED_CONTEXT",
    "REPORT_TABLES",
    "published_figures",
    "read_agreement_tables",
    "write_published_report",
    "write_report",
]
