"""dpt-train and dpt-eval end a user error with ONE line on stderr and exit status 2, never a traceback:
a missing config or weights file, a bad override, and data on which the metric recipe cannot start."""

import subprocess
import sys
from dataclasses import replace

import pytest

from dpt_train.cli import eval_main, main, train_main
from dpt_train.synthetic_kitti import write_synthetic_kitti
from support.cli import assert_user_error, run_main
from support.environment import subprocess_env
from support.train_support import SPEC, overrides, single_torch_thread  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    "entry, argv, fragments",
    [
        (train_main, ["--config", "{tmp}/absent.yaml"], ["absent.yaml"]),
        (train_main, ["batch_size=many"], ["batch_size", "many"]),
        (train_main, ["optim.optimizer=lion"], ["optim.optimizer", "lion"]),
        (train_main, ["no_such_section.key=1"], ["no_such_section"]),
        (train_main, ["--resume", "{tmp}/absent.pt", "run_dir={tmp}/run", "data.train_split={tmp}/absent.txt"],
         ["absent"]),
        (eval_main, ["--config", "{tmp}/absent.yaml"], ["absent.yaml"]),
        (eval_main, ["--weights", "{tmp}/absent.pt", "model.preset=dpt_hybrid_kitti", "device=cpu"], ["absent.pt"]),
        (main, ["fit"], ["train", "eval"]),
    ],
    ids=["train-missing-config", "train-bad-value", "train-bad-choice", "train-unknown-key", "train-missing-split",
         "eval-missing-config", "eval-missing-weights", "unknown-command"],
)
def test_user_errors_end_in_one_line_and_status_2(entry, argv, fragments, tmp_path, capsys):
    status, stderr = run_main(entry, [arg.replace("{tmp}", str(tmp_path)) for arg in argv], capsys)
    assert_user_error(status, stderr, *fragments)


def test_eval_with_a_weights_file_that_is_not_one(tmp_path, capsys):
    garbage = tmp_path / "weights.pt"
    garbage.write_bytes(b"not a checkpoint")
    status, stderr = run_main(eval_main, ["--weights", str(garbage), "model.preset=dpt_hybrid_kitti", "device=cpu"],
                              capsys)
    assert_user_error(status, stderr, "weights.pt")


def test_recipe_that_cannot_align_any_sample_is_a_clear_error(tmp_path, capsys):
    # Ten LiDAR points per frame: fewer than the robust fit's minimum, so every per-sample alignment fails.
    sparse = write_synthetic_kitti(tmp_path / "kitti", replace(SPEC, lidar_rows=1, lidar_points_per_row=10))
    argv = overrides(sparse, tmp_path / "run", **{
        "model.metric_scale": "null", "model.metric_shift": "null", "recipe.estimate_scale_shift": "true",
        "recipe.samples": 3, "max_steps": 1})
    status, stderr = run_main(train_main, argv, capsys)
    assert_user_error(status, stderr, "robust alignment failed on all 3")


@pytest.mark.slow
def test_dpt_eval_without_weights_as_a_user_runs_it(tmp_path):
    """The whole process, as `dpt-eval` runs: logging configured, no pytest capture in between."""
    command = [sys.executable, "-m", "dpt_train.cli", "eval", "--weights", str(tmp_path / "absent.pt"),
               "model.preset=dpt_hybrid_kitti", "device=cpu"]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert_user_error(result.returncode, result.stderr, "dpt-eval", "absent.pt")
