"""Atomic checkpoint files, keep-last-N rotation and best-by-metric weights.

Two kinds of file live in a run folder:
  checkpoints/step_<N>.pt  full training state for --resume: {"model", "optimizer", "scheduler", "scaler",
                           "rng", "step", "best", "config"}; "model" holds the official DPT state-dict keys.
  weights/best.pt, weights/last.pt  the bare model state dict in the official key format, exactly what
                           `dpt_ros.build_model(preset, weights=...)` and the node's `weights:=...` load.
Every file is written to a temporary name in the same folder, fsync'ed and renamed over the target, so a
crash mid-write leaves the previous file intact. Everything loads with torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

_STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(handle) on a temporary file beside path, fsync, then os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temporary file and a rename: a crash leaves the old file or the new one."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a small text file (config, JSON) atomically."""
    _atomic_write(path, lambda handle: handle.write(text.encode()))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint on the CPU with weights_only=True."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete step checkpoints of a run, oldest first (temporary files are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _STEP_FILE.match(p.name))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest step checkpoint of a run, or None."""
    checkpoints = step_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


class CheckpointWriter:
    """Writes step checkpoints (keeping the newest keep_last) and best/last weights of one run."""

    def __init__(self, run_dir: str | Path, keep_last: int, best_metric: str, higher_is_better: bool) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.run_dir = Path(run_dir)
        self.keep_last = keep_last
        self.best_metric = best_metric
        self.higher_is_better = higher_is_better

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best

    def save_step(self, step: int, state: dict[str, Any]) -> Path:
        """Write checkpoints/step_<step>.pt atomically, then delete all but the newest keep_last."""
        path = self.run_dir / "checkpoints" / f"step_{step:08d}.pt"
        atomic_torch_save(state, path)
        for old in step_checkpoints(self.run_dir)[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def save_weights(self, name: str, model_state: dict[str, torch.Tensor]) -> Path:
        """Write weights/<name>.pt (bare official-format state dict) atomically."""
        path = self.run_dir / "weights" / f"{name}.pt"
        atomic_torch_save(model_state, path)
        return path
