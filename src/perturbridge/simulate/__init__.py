"""Seeded simulators of perturbation datasets with planted ground truth."""

from .agreement import AgreementDesign, simulate_agreement_store
from .counts import CountsDesign, SimulatedCounts, simulate_counts, tahoe_cell_line
from .l1000 import L1000Plates, SimulatedL1000, simulate_l1000, sizes_for
from .pretraining import PretrainingDesign, SimulatedPretraining, simulate_pretraining_store

__all__ = [
    "AgreementDesign",
    "CountsDesign",
    "L1000Plates",
    "PretrainingDesign",
    "SimulatedCounts",
    "SimulatedL1000",
    "SimulatedPretraining",
    "simulate_agreement_store",
    "simulate_counts",
    "simulate_l1000",
    "simulate_pretraining_store",
    "sizes_for",
    "tahoe_cell_line",
]
