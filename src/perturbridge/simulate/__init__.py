"""Seeded simulators of perturbation datasets with planted ground truth."""

from .agreement import simulate_agreement_store as simulate_agreement_store
from .counts import SimulatedCounts, simulate_counts, tahoe_cell_line
from .l1000 import SimulatedL1000, simulate_l1000, sizes_for

__all__ = [
    "SimulatedCounts",
    "SimulatedL1000",
    "simulate_counts",
    "simulate_l1000",
    "sizes_for",
    "tahoe_cell_line",
]
