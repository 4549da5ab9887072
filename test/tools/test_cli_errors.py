"""Every dpt_ros console script ends a user error (missing file, bad argument value, missing weights) with ONE
line on stderr and exit status 2, never a traceback. (dpt-ros-eval's own error paths: test_evaluate_bag.py;
the ROS nodes are not command lines: a node that cannot start logs why and exits 1.)"""

import pytest

from dpt_ros.tools import bench, demo, depth_image, evaluate_bag, export, make_sample_bag, replay_bag, weights
from support.cli import assert_user_error, run_main

# (program, main, argv with {tmp} for a fresh folder, fragments the error line must name)
CASES = [
    ("dpt-ros-weights", weights.main, ["verify", "dpt_tiny"], ["dpt_tiny"]),
    ("dpt-ros-weights", weights.main, ["fetch-all"], ["invalid choice"]),
    ("dpt-ros-depth-image", depth_image.main, ["{tmp}/a.png", "--weights", "{tmp}/absent.pt", "--device", "cpu"],
     ["absent.pt"]),
    ("dpt-ros-depth-image", depth_image.main, ["{tmp}/a.png", "--precision", "int8"], ["--precision"]),
    ("dpt-ros-depth-image", depth_image.main, ["{tmp}/a.png", "--device", "tpu", "--allow-random-weights"], ["tpu"]),
    ("dpt-ros-bench", bench.main, ["--size", "big"], ["'big'", "HxW"]),
    ("dpt-ros-bench", bench.main, ["--weights", "{tmp}/absent.pt", "--device", "cpu"], ["absent.pt"]),
    ("dpt-ros-bench", bench.main, ["--architecture-overrides", '{"no_such_field": 1}', "--device", "cpu"],
     ["no_such_field"]),
    ("dpt-ros-export", export.main, ["--out", "{tmp}/model.onnx"], ["--weights"]),
    ("dpt-ros-export", export.main, ["--weights", "{tmp}/absent.pt", "--out", "{tmp}/model.onnx"], ["absent.pt"]),
    ("dpt-ros-export", export.main, ["--allow-random-weights", "--out", "{tmp}/m.onnx", "--check-sizes", "384"],
     ["'384'"]),
    ("dpt-ros-make-sample", make_sample_bag.main, ["{tmp}/bag", "--frames", "0"], ["frame"]),
    ("dpt-ros-make-sample", make_sample_bag.main, ["{tmp}/bag", "--format", "zip"], ["--format"]),
    ("dpt-ros-replay", replay_bag.main, ["{tmp}/absent_bag"], ["absent_bag"]),
    ("dpt-ros-replay", replay_bag.main, ["{tmp}/absent_bag", "--rate", "0"], ["--rate"]),
    ("dpt-ros-eval", evaluate_bag.main, ["{tmp}/absent_bag"], ["absent_bag"]),
    ("dpt-ros-demo", demo.main, ["--frames", "many"], ["--frames"]),
]


@pytest.mark.parametrize("prog, main, argv, fragments", CASES, ids=[f"{c[0]} {' '.join(c[2])}" for c in CASES])
def test_user_errors_end_in_one_line_and_status_2(prog, main, argv, fragments, tmp_path, capsys):
    status, stderr = run_main(main, [arg.replace("{tmp}", str(tmp_path)) for arg in argv], capsys)
    assert_user_error(status, stderr, *fragments)


def test_an_existing_sample_bag_is_not_overwritten_without_asking(tmp_path, capsys):
    target = tmp_path / "bag"
    assert make_sample_bag.main([str(target), "--frames", "1", "--width", "16", "--height", "16"]) == 0
    capsys.readouterr()
    status, stderr = run_main(make_sample_bag.main, [str(target), "--frames", "1", "--width", "16", "--height", "16"],
                              capsys)
    assert_user_error(status, stderr, "dpt-ros-make-sample", str(target))  # says which program and which bag
