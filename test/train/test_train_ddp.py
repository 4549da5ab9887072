"""A 2-process torchrun (gloo, CPU) run follows the single-process loss curve."""

import subprocess
import sys

import pytest
import torch

from dpt_train.engine import Trainer
from dpt_train.plots import read_log
from support.environment import subprocess_env
from support.train_support import config, make_dataset, overrides, single_torch_thread  # noqa: F401 (autouse)

STEPS = 6


def test_two_process_gloo_run_matches_single_process_loss_curve(tmp_path):
    paths = make_dataset(tmp_path / "kitti")
    single = Trainer(config(paths, tmp_path / "single", max_steps=STEPS))
    single.start()
    single.fit()
    single.close()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "dpt_train.cli", "train", *overrides(paths, tmp_path / "ddp", max_steps=STEPS)]
    env = subprocess_env(OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    single_log, ddp_log = read_log(tmp_path / "single" / "train.jsonl"), read_log(tmp_path / "ddp" / "train.jsonl")
    raw_lines = (tmp_path / "ddp" / "train.jsonl").read_text().splitlines()
    assert len(raw_lines) == STEPS and list(ddp_log) == list(range(1, STEPS + 1))  # rank 0 alone writes
    for step in single_log:
        # same global batch per step (2 x 2 = 4 images); only float summation order differs
        assert ddp_log[step]["loss"] == pytest.approx(single_log[step]["loss"], rel=1e-4), step
    # validation is sharded 4 + 3 images over the ranks and summed: same metrics as one process
    single_val, ddp_val = read_log(tmp_path / "single" / "val.jsonl"), read_log(tmp_path / "ddp" / "val.jsonl")
    for name, value in single_val[STEPS].items():
        assert ddp_val[STEPS][name] == pytest.approx(value, rel=1e-3, abs=1e-5), name
    ddp_weights = torch.load(tmp_path / "ddp" / "weights" / "last.pt", weights_only=True)
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-3, atol=1e-4, msg=name)
