"""Seeded simulators of perturbation datasets with planted ground truth."""

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
