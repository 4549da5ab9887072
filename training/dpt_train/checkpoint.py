"""Atomic checkpoint files, keep-last-N rotation and best-by-metric weights.

Two kinds of file live in a run folder:
  checkpoints/step_<N>.pt  full training state for --resume: {"model", "optimizer", "scheduler", "scaler",
                           "rng", "step", "best", "config"}; "model" holds the official DPT state-dict keys.
  weights/best.pt, weights/last.pt  the bare model state dict in the official key format, exactly what
                           `dpt_ros.build_model(preset, weights=...)` and the node's `weights:=...` load.
Every file is written to a temporary name in the same folder, fsync'ed and renamed over the target, so a
crash mid-write leaves the previous file intact; the temporaries a hard kill leaves behind are removed at
the next start (`remove_orphaned_temporaries`). A full disk is reported as `DiskFullError` naming the file
and the free space, not as torch's "unexpected pos". Everything loads with torch.load(weights_only=True);
`--resume auto` takes the newest checkpoint that loads (`newest_loadable_checkpoint`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

LOG = logging.getLogger(__name__)
_STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")
_TEMPORARY_FILE = re.compile(r"^\..+\.tmp-(\d+)$")  # what _atomic_write names its files: .<name>.tmp-<pid>


class DiskFullError(OSError):
    """A write failed for lack of space; the message names the file and the free space left there."""


class NoLoadableCheckpointError(RuntimeError):
    """Every step checkpoint of a run failed to load; the message lists each file and why."""


@contextmanager
def disk_full_says_where(path: str | Path) -> Iterator[None]:
    """Turn an ENOSPC from writing `path` into a DiskFullError that says where; other errors pass unchanged."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC or isinstance(error, DiskFullError):
            raise
        raise _disk_full(path) from error


def _disk_full(path: str | Path) -> DiskFullError:
    path = Path(path)
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free there"
    except OSError:
        free = "free space unknown"
    return DiskFullError(errno.ENOSPC, f"no space left on device while writing {path} ({free})")


class _WriteRecorder:
    """A binary file wrapper remembering an OSError from write/flush: torch.save swallows it inside its C++
    writer and raises RuntimeError("unexpected pos ...") instead, which would hide a full disk."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as error:
            self.error = error
            raise


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(handle) on a temporary file beside path, fsync, then os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    recorder = None
    try:
        with disk_full_says_where(path), open(temporary, "wb") as handle:
            recorder = _WriteRecorder(handle)
            try:
                write(recorder)  # type: ignore[arg-type]  # a BinaryIO as far as write() is concerned
            except RuntimeError as error:  # torch's wrapping of the handle's OSError
                if recorder.error is not None and recorder.error.errno == errno.ENOSPC:
                    raise _disk_full(path) from error
                raise
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


def newest_loadable_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that loads, with its contents; None when the run has none.

    A checkpoint that fails to load (truncated, corrupted on disk) is logged and the previous one is
    tried; raises NoLoadableCheckpointError when all of them fail.
    """
    failures = []
    for path in reversed(step_checkpoints(run_dir)):
        try:
            state = load_checkpoint(path)
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not a training checkpoint (no 'step')")
        except Exception as error:  # torch/zipfile/pickle raise many types for a damaged file
            LOG.warning("checkpoint %s does not load (%s); trying the previous one", path, _one_line(error))
            failures.append(f"{path.name}: {_one_line(error)}")
            continue
        return path, state
    if failures:
        raise NoLoadableCheckpointError(f"no checkpoint of {run_dir} loads: " + "; ".join(failures))
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def remove_orphaned_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the .<name>.tmp-<pid> files of writers that are no longer running (a hard kill mid-write).

    Looks in checkpoints/ and weights/; a temporary of a live process (another writer, this one) is kept.
    Returns the removed paths.
    """
    removed = []
    for folder in (Path(run_dir) / "checkpoints", Path(run_dir) / "weights"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TEMPORARY_FILE.match(path.name)
            if match and not _process_alive(int(match.group(1))):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def drop_records_after(log_path: str | Path, step: int) -> int:
    """Rewrite a JSON-lines log keeping the records up to `step` (and no torn last line); returns how many went.

    A resumed run repeats the steps after its checkpoint: their records from the killed run are dropped so
    that each step is logged once.
    """
    log_path = Path(log_path)
    if not log_path.is_file():
        return 0
    kept, dropped = [], 0
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = int(record["step"]) <= step
        except (ValueError, KeyError, TypeError):  # a line cut short by the kill
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(log_path, "".join(f"{line}\n" for line in kept))
    return dropped


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
