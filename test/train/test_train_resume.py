"""Kill/resume gives the uninterrupted trajectory; an interrupted checkpoint write loses nothing."""

import subprocess
import sys
import time

import pytest
import torch

from dpt_train.checkpoint import CheckpointWriter, latest_checkpoint, load_checkpoint, step_checkpoints
from dpt_train.engine import Trainer
from dpt_train.plots import read_log
from support.environment import subprocess_env
from support.train_support import config, make_dataset, overrides, single_torch_thread  # noqa: F401 (autouse)

STEPS_AFTER_RESUME = 4
# decay "none": the killed run is launched with a long max_steps (so it is still running when killed),
# and the comparison runs end at a step chosen after the kill: neither may change the learning-rate schedule.
SETTINGS = {"checkpoint_every": 2, "optim.decay": "none"}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("kitti"))


def _train(paths, run_dir, max_steps, resume=None):
    trainer = Trainer(config(paths, run_dir, **SETTINGS, max_steps=max_steps))
    trainer.start(resume)
    trainer.fit()
    trainer.close()
    return trainer


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(paths, tmp_path):
    killed_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "dpt_train.cli", "train",
               *overrides(paths, killed_dir, **SETTINGS, max_steps=100000)]
    env = subprocess_env(OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while latest_checkpoint(killed_dir) is None:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the training subprocess wrote no checkpoint in 240 s"
        time.sleep(0.01)
    process.kill()  # SIGKILL: no cleanup, exactly like a crash or a pre-empted job
    process.wait()
    process.stderr.close()
    # However late the kill lands (a busy machine may let the run write several more checkpoints first),
    # both runs end STEPS_AFTER_RESUME steps after the checkpoint the resume starts from.
    interrupted_at = load_checkpoint(latest_checkpoint(killed_dir))["step"]
    assert interrupted_at >= 2
    steps = interrupted_at + STEPS_AFTER_RESUME
    uninterrupted = _train(paths, tmp_path / "uninterrupted", steps)
    resumed = _train(paths, killed_dir, steps, resume="auto")
    assert resumed.step == steps
    for name, tensor in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    losses = read_log(killed_dir / "train.jsonl")  # later records of a step replace the killed run's
    reference = read_log(tmp_path / "uninterrupted" / "train.jsonl")
    for step in range(interrupted_at + 1, steps + 1):
        assert losses[step]["loss"] == pytest.approx(reference[step]["loss"], rel=1e-5)


def test_interrupted_checkpoint_write_leaves_previous_checkpoint_loadable(paths, tmp_path, monkeypatch):
    trainer = Trainer(config(paths, tmp_path / "run", max_steps=2))
    writer = CheckpointWriter(tmp_path / "run", keep_last=3, best_metric="abs_rel", higher_is_better=False)
    trainer.step = 2
    writer.save_step(2, trainer.state_dict())
    real_save = torch.save

    def save_half_then_die(obj, handle, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, handle)  # some bytes reach the disk...
        raise KeyboardInterrupt  # ...then the process is interrupted mid-write

    monkeypatch.setattr(torch, "save", save_half_then_die)
    trainer.step = 4
    with pytest.raises(KeyboardInterrupt):
        writer.save_step(4, trainer.state_dict())
    monkeypatch.setattr(torch, "save", real_save)
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002.pt"]  # no partial file, no temp
    # a hard kill cannot clean up: a stray temporary file must be ignored by resume
    (folder / ".step_00000004.pt.tmp-12345").write_bytes(b"PK\x03\x04 truncated")
    assert [p.name for p in step_checkpoints(tmp_path / "run")] == ["step_00000002.pt"]
    restored = Trainer(config(paths, tmp_path / "run", max_steps=2))
    restored.start("auto")
    assert restored.step == 2
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], tensor)
    trainer.close()
    restored.close()
