"""Multi-scenario CTR models (Scenario-Wise Rec's 12 plus baselines); importing registers them."""

from recwise.models.msr import (  # noqa: F401
    adaptdhm,
    adasparse,
    baselines,
    epnet,
    hamur,
    m2m,
    m3oe,
    mmoe,
    ple,
    ppnet,
    sarnet,
    shared_bottom,
    star,
)
from recwise.models.msr._base import MSRModel, pick_scenario

__all__ = ["MSRModel", "pick_scenario"]
