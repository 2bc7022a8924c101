"""Shared layers: the generic blocks every model may use (paper-specific blocks stay in model files)."""

from recwise.nn.embedding import FeatureEmbedding
from recwise.nn.mlp import MLP, activation
from recwise.nn.parallel import ParallelMLP

__all__ = ["MLP", "FeatureEmbedding", "ParallelMLP", "activation"]
