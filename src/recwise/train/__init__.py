"""The one training loop, its config and checkpoints, and the deterministic mode."""

from recwise.train.checkpoint import load_model, save_model, save_tensors
from recwise.train.determinism import DETERMINISTIC_THREADS, determinism_info, deterministic
from recwise.train.trainer import TrainConfig, Trainer, TrainResult, predict, seed_everything

__all__ = ["DETERMINISTIC_THREADS", "TrainConfig", "TrainResult", "Trainer", "determinism_info", "deterministic",
           "load_model", "predict", "save_model", "save_tensors", "seed_everything"]
