"""Multi-scenario CTR models (Scenario-Wise Rec's 12 plus baselines); importing registers them."""

from recwise.models.msr import baselines, epnet, mmoe, ple, ppnet, sarnet, shared_bottom, star  # noqa: F401
from recwise.models.msr._base import MSRModel, pick_scenario

__all__ = ["MSRModel", "pick_scenario"]
