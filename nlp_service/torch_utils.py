"""Small PyTorch helpers shared by the neural model kinds: device choice, parameter counts, seeding, atomic
checkpoints."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def pick_device(preference: str = "auto") -> torch.device:
    """``cuda`` when asked for (an error without one) or when ``auto`` finds one; else ``cpu``."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable and frozen parameters, a tensor shared between layers (tied embeddings) counted once."""
    return int(sum(p.numel() for p in model.parameters()))  # parameters() yields each tensor once


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only``: nothing is unpickled)."""
    return torch.load(path, map_location=device, weights_only=True)


def restore_training_state(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scaler: torch.amp.GradScaler) -> None:
    """Put a checkpoint's model, optimizer, gradient scaler and global torch RNG back in place."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])  # dropout masks continue as in an uninterrupted run
