"""The one training loop, its config and checkpoints."""

from recwise.train.checkpoint import load_model, save_model
from recwise.train.trainer import TrainConfig, Trainer, TrainResult, predict, seed_everything

__all__ = ["TrainConfig", "TrainResult", "Trainer", "load_model", "predict", "save_model", "seed_everything"]
