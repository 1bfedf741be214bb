"""Seeded simulators of perturbation datasets with planted ground truth."""

from .agreement import AgreementDesign, simulate_agreement_store
from .counts import CountsDesign, SimulatedCounts, simulate_counts, tahoe_cell_line
from .l1000 import L1000Plates, SimulatedL1000, simulate_l1000, sizes_for

__all__ = [
    "AgreementDesign",
    "CountsDesign",
    "L1000Plates",
    "SimulatedCounts",
    "SimulatedL1000",
    "simulate_agreement_store",
    "simulate_counts",
    "simulate_l1000",
    "sizes_for",
    "tahoe_cell_line",
]
