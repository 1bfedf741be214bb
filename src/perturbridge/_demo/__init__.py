"""The demos (outside the core; nothing in the core imports them; the CLI's ``demo``
command runs them).

:func:`run_demo` (L1000 end to end with recovery metrics), :func:`run_demo_all` (one
simulated dataset per source family) and :func:`run_demo_compendium` (those families
built into a compendium from a plan file).
"""

from .compendium import run_demo_compendium, write_demo_plan
from .families import FamilyResult, run_demo_all, summary_table
from .fixtures import FAMILIES
from .l1000 import DemoResult, recovery_metrics, run_demo

__all__ = [
    "FAMILIES",
    "DemoResult",
    "FamilyResult",
    "recovery_metrics",
    "run_demo",
    "run_demo_all",
    "run_demo_compendium",
    "summary_table",
    "write_demo_plan",
]
