"""Seeded simulators of perturbation datasets with planted ground truth."""

from .l1000 import SimulatedL1000, simulate_l1000, sizes_for

__all__ = ["SimulatedL1000", "simulate_l1000", "sizes_for"]
