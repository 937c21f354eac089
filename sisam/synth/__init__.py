"""A synthetic customs world with known truth, for testing and benchmarking sisam.

``generate_world`` writes history, rectified, test and truth tables (see
``sisam.synth.world``); the modules of this package build the world step by step.
"""

from sisam.synth.world import CombinationScheme, WorldSummary, generate_world

__all__ = ["CombinationScheme", "WorldSummary", "generate_world"]
