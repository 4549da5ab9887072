import cv2
import numpy as np

from dpt_ros.tools.depth_image import depth_png, main


def test_metric_png_is_kitti_encoding_with_zero_invalid():
    values = np.array([[1.0, 80.0], [np.nan, -2.0]], np.float32)
    assert depth_png(values, metric=True).tolist() == [[256, 20480], [0, 0]]


def test_relative_png_spans_uint16_and_keeps_order():
    values = np.array([[0.5, 1.0, 2.0]], np.float32)
    assert depth_png(values, metric=False).tolist() == [[0, 21845, 65535]]


def test_cli_writes_pngs_and_reports_unreadable_files(tmp_path, capsys):
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = main([str(image), str(tmp_path / "missing.png"), "--out", str(out), "--device", "cpu",
                 "--allow-random-weights", "--preset", "dpt_hybrid_midas", "--weights", str(tmp_path / "none.pt")])
    assert code == 1  # one unreadable input
    depth = cv2.imread(str(out / "scene_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (40, 56)
    assert (out / "scene_depth_colored.png").is_file()
    assert "cannot read image" in capsys.readouterr().err


def test_cli_without_weights_says_where_to_get_them(tmp_path, capsys):
    assert main([str(tmp_path / "x.png"), "--weights", str(tmp_path / "absent.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "https://github.com/isl-org/DPT/releases/download/1_0/dpt_hybrid-midas-501f0c75.pt" in err
    assert "`dpt-ros-weights download dpt_hybrid_midas`" in err
