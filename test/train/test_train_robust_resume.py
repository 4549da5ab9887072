"""What a killed or starved training run leaves behind: orphaned temporaries, repeated log records, a
corrupt newest checkpoint, a full disk."""

import errno
import io
import json
import os
import subprocess
import sys

import pytest
import torch

import dpt_train.checkpoint as checkpoint_module
from dpt_train.checkpoint import (
    CheckpointWriter,
    DiskFullError,
    NoLoadableCheckpointError,
    drop_records_after,
    newest_loadable_checkpoint,
    remove_orphaned_temporaries,
)
from dpt_train.cli import train_main
from dpt_train.engine import Trainer
from support.train_support import config, make_dataset, overrides, single_torch_thread  # noqa: F401 (autouse)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("kitti"))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _writer(run_dir):
    return CheckpointWriter(run_dir, keep_last=3, best_metric="abs_rel", higher_is_better=False)


def test_orphaned_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = _dead_pid()
    for folder in ("checkpoints", "weights"):
        (tmp_path / folder).mkdir()
    orphans = [tmp_path / "checkpoints" / f".step_00000004.pt.tmp-{dead}", tmp_path / "weights" / f".best.pt.tmp-{dead}"]
    live = tmp_path / "checkpoints" / f".step_00000006.pt.tmp-{os.getpid()}"
    keep = tmp_path / "checkpoints" / "step_00000002.pt"
    for path in (*orphans, live, keep):
        path.write_bytes(b"PK\x03\x04 partial")
    assert sorted(remove_orphaned_temporaries(tmp_path)) == sorted(orphans)
    assert live.exists() and keep.exists() and not any(p.exists() for p in orphans)


def test_log_records_after_the_checkpoint_are_dropped_once(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 7)) + '{"step": 7, "lo')
    assert drop_records_after(log, 4) == 3  # steps 5, 6 and the torn line
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    assert drop_records_after(log, 4) == 0 and drop_records_after(tmp_path / "missing.jsonl", 1) == 0


@pytest.mark.slow
def test_resume_auto_falls_back_past_a_corrupt_checkpoint_and_logs_each_step_once(paths, tmp_path):
    run = tmp_path / "run"
    first = Trainer(config(paths, run, max_steps=4, checkpoint_every=2))
    first.start()
    first.fit()
    first.close()
    newest = run / "checkpoints" / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # damaged on disk
    (run / "checkpoints" / f".step_00000006.pt.tmp-{_dead_pid()}").write_bytes(b"partial")
    path, state = newest_loadable_checkpoint(run)
    assert path.name == "step_00000002.pt" and state["step"] == 2

    resumed = Trainer(config(paths, run, max_steps=6, checkpoint_every=2))
    resumed.start("auto")
    assert resumed.step == 2 and not list((run / "checkpoints").glob(".*tmp-*"))
    resumed.fit()
    resumed.close()
    steps = [json.loads(line)["step"] for line in (run / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the first run's 3 and 4 are replaced, not repeated

    for checkpoint in (run / "checkpoints").glob("step_*.pt"):
        checkpoint.write_bytes(b"not a zip")
    with pytest.raises(NoLoadableCheckpointError, match="step_00000006.pt: "):
        newest_loadable_checkpoint(run)


class _FullDisk(io.FileIO):
    """A file on a disk with `room` bytes left: writes beyond it fail with ENOSPC, as write(2) does."""

    room = 4096

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def _full_disk_open(path, mode="r", *args, **kwargs):
    if "w" not in mode and "a" not in mode:
        return open(path, mode, *args, **kwargs)
    binary = io.BufferedWriter(_FullDisk(path, mode.replace("b", "")))
    return binary if "b" in mode else io.TextIOWrapper(binary, encoding="utf-8")


def test_a_full_disk_says_so_and_where_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    writer = _writer(tmp_path)
    state = {"step": 2, "model": {"weight": torch.zeros(10_000)}}
    writer.save_step(2, state)
    monkeypatch.setattr(checkpoint_module, "open", _full_disk_open, raising=False)
    with pytest.raises(DiskFullError) as raised:
        writer.save_step(4, {**state, "step": 4})
    message = str(raised.value)
    assert "no space left on device while writing" in message and "step_00000004.pt" in message
    assert "MiB free there" in message and raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002.pt"]  # no temporary


@pytest.mark.slow
def test_the_trainer_cli_ends_a_full_disk_with_one_line(paths, tmp_path, monkeypatch, capsys):
    import dpt_train.engine as engine_module

    monkeypatch.setattr(engine_module, "open", _full_disk_open, raising=False)  # the train.jsonl append
    monkeypatch.setattr(_FullDisk, "room", 0)
    code = train_main(overrides(paths, tmp_path / "run", max_steps=1))
    errors = [line for line in capsys.readouterr().err.splitlines() if "Error" in line or "dpt-train" in line]
    assert code == 2 and len(errors) == 1, errors  # one line, no traceback (tqdm's progress bar aside)
    error = errors[0]
    assert error.startswith("dpt-train: [Errno 28] no space left on device while writing ")
    assert error.endswith("MiB free there)") and "train.jsonl" in error
