"""recwise: one toolkit for recommender-system and LLM-enhanced retrieval research."""

from recwise.errors import CheckpointError, ConfigError, DataError, DependencyError, RecwiseError

__version__ = "0.1.0"
__all__ = ["CheckpointError", "ConfigError", "DataError", "DependencyError", "RecwiseError", "__version__"]
