"""A 2-process torchrun (gloo, CPU) run follows the single-process trajectory.

Both runs see the same global batch per step (2 ranks x 2 images = 4 images); only the float summation
order of the gradients differs (two half-batch sums averaged by gloo vs one sum). How far that moves the
weights depends on the optimiser, so each bound below is derived from the optimiser's update rule:
- SGD (momentum mu): the update is linear in the gradient, so rounding differences stay rounding-sized.
- Adam/AdamW: the update is lr * m_hat / sqrt(v_hat), invariant to the gradient's scale. An element whose
  gradient is at rounding level gets a full +-lr step whose sign is decided by rounding, so per-element
  weights can only be bounded by the optimiser's largest possible travel; the first loss is compared to
  rounding, the later ones within the first-order effect of the measured weight divergence.
"""

import math
import subprocess
import sys

import pytest
import torch

from dpt_train.engine import Trainer
from dpt_train.plots import read_log
from support.environment import subprocess_env
from support.train_support import config, make_dataset, overrides, single_torch_thread  # noqa: F401 (autouse)

pytestmark = pytest.mark.slow

STEPS = 6
FLOAT32_EPS = torch.finfo(torch.float32).eps
# Relative rounding of a float32 gradient reduction: sqrt(n) * eps for the ~1e4-term sums of these convs.
GRADIENT_ROUNDING = math.sqrt(1e4) * FLOAT32_EPS


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("kitti"))


def _single_and_ddp(dataset, run_root, optimizer: str):
    """Train STEPS steps in this process and with torchrun --nproc_per_node=2; return (trainer, run folders)."""
    settings = {"max_steps": STEPS, "optim.optimizer": optimizer}
    single = Trainer(config(dataset, run_root / "single", **settings))
    single.start()
    single.fit()
    single.close()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "dpt_train.cli", "train", *overrides(dataset, run_root / "ddp", **settings)]
    result = subprocess.run(command, env=subprocess_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    raw_lines = (run_root / "ddp" / "train.jsonl").read_text().splitlines()
    single_log, ddp_log = read_log(run_root / "single" / "train.jsonl"), read_log(run_root / "ddp" / "train.jsonl")
    assert len(raw_lines) == STEPS and list(ddp_log) == list(range(1, STEPS + 1))  # rank 0 alone writes
    ddp_weights = torch.load(run_root / "ddp" / "weights" / "last.pt", weights_only=True)
    return single, single_log, ddp_log, ddp_weights


def _learning_rates(log: dict, group: str) -> list[float]:
    """The learning rate each logged step used, in step order (warm-up included)."""
    return [log[step][f"lr_{group}"] for step in sorted(log)]


def test_two_process_sgd_run_follows_the_single_process_trajectory(dataset, tmp_path):
    single, single_log, ddp_log, ddp_weights = _single_and_ddp(dataset, tmp_path, "sgd")
    for step in single_log:
        # the loss is a float32 mean over every pixel of the batch: its own rounding, nothing more
        assert ddp_log[step]["loss"] == pytest.approx(single_log[step]["loss"], rel=10 * GRADIENT_ROUNDING), step
    # validation is sharded 4 + 3 images over the ranks and summed: same metrics as one process
    single_val, ddp_val = read_log(tmp_path / "single" / "val.jsonl"), read_log(tmp_path / "ddp" / "val.jsonl")
    for name, value in single_val[STEPS].items():
        assert ddp_val[STEPS][name] == pytest.approx(value, rel=10 * GRADIENT_ROUNDING), name
    # Heavy-ball SGD: theta_T = theta_0 - sum_t lr_t * sum_{s<=t} mu^(t-s) g_s. A rounding difference dg in a
    # clipped gradient (|g| <= grad_clip) moves an element by at most sum_t lr_t / (1 - mu) * dg, and each
    # of the STEPS weight updates rounds once more (relative eps).
    momentum, grad_clip = single.config.optim.momentum, single.config.optim.grad_clip
    for name, tensor in single.model.state_dict().items():
        group = "backbone" if name.startswith("pretrained.") else "decoder"
        travel = sum(_learning_rates(single_log, group)) / (1 - momentum)
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=2 * STEPS * FLOAT32_EPS,
                                   atol=travel * grad_clip * GRADIENT_ROUNDING, msg=name)


def _adam_step_bound(step: int, beta1: float, beta2: float) -> float:
    """Largest |m_hat / sqrt(v_hat)| Adam can produce at step `step` (1-based), whatever the gradients.

    m = (1-b1) sum_k b1^k g_(t-k) and v = (1-b2) sum_k b2^k g_(t-k)^2; Cauchy-Schwarz gives
    |sum_k b1^k g| <= sqrt(sum_k (b1^2/b2)^k) * sqrt(sum_k b2^k g^2). With the bias corrections this is 1 at
    step 1 (the update is lr * sign(g)) and about 1.02 at step 6 for the default betas (0.9, 0.999).
    """
    ratio = beta1**2 / beta2
    cauchy_schwarz = math.sqrt(sum(ratio**k for k in range(step)))
    return (1 - beta1) / (1 - beta1**step) * cauchy_schwarz * math.sqrt((1 - beta2**step) / (1 - beta2))


def test_two_process_adamw_run_follows_the_single_process_loss_curve(dataset, tmp_path):
    single, single_log, ddp_log, ddp_weights = _single_and_ddp(dataset, tmp_path, "adamw")
    # Per element, Adam(W) can only be bounded by its largest travel: each run moves an element by at most
    # sum_t lr_t * bound_t (weight decay shrinks both runs alike), so two runs differ by at most twice that.
    beta1, beta2 = single.optimizer.param_groups[0]["betas"]
    squared_distance = 0.0
    for name, tensor in single.model.state_dict().items():
        group = "backbone" if name.startswith("pretrained.") else "decoder"
        rates = _learning_rates(single_log, group)
        travel = sum(lr * _adam_step_bound(t, beta1, beta2) for t, lr in enumerate(rates, start=1))
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=2 * STEPS * FLOAT32_EPS, atol=2 * travel,
                                   msg=name)
        if tensor.is_floating_point():
            squared_distance += float(((ddp_weights[name] - tensor).double() ** 2).sum())
    # Step 1's loss is computed on identical weights: only the loss reduction's own rounding may differ, so a
    # wrong batch split or sample order fails here. Later losses are computed on weights that the
    # rounding-decided +-lr steps above have moved apart; to first order the loss then differs by at most
    # |grad L| * |w_ddp - w_single| (the divergence only grows over the run, so the final distance bounds
    # the earlier ones), plus the same reduction rounding.
    distance = math.sqrt(squared_distance)
    for step in single_log:
        loss = single_log[step]["loss"]
        rounding = 10 * GRADIENT_ROUNDING * abs(loss)
        divergence = 0.0 if step == 1 else single_log[step]["grad_norm"] * distance
        assert abs(ddp_log[step]["loss"] - loss) <= rounding + divergence, (step, distance)
