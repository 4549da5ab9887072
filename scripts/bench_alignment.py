#!/usr/bin/env python3
"""Time LiDAR projection + robust alignment per frame: a 64-beam scan (120k points) and a 640x480 prediction.

Usage, from the repository root (with dpt_ros importable, e.g. PYTHONPATH=.):
    python scripts/bench_alignment.py [--repeats 100] [--beams 64] [--azimuth 1875]
Prints median / 90th-percentile milliseconds per stage and the accuracy of the robust and the plain
least-squares fit on the synthetic scene (a ray-cast street, `--outliers` of the returns replaced by junk);
`--plot file.png` draws truth, LiDAR inliers/outliers, the aligned depth and its error.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from dpt_ros.alignment.fit import fit_scale_shift, to_metric
from dpt_ros.alignment.temporal_filter import TemporalAlignmentFilter
from dpt_ros.geometry.lidar_projection import project_lidar
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION
from dpt_ros.geometry.transforms import make_transform as pose
from dpt_ros.sim.scene import render_depth, spinning_lidar_scan, street_scene

WIDTH, HEIGHT = 640, 480
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
D = [-0.05, 0.01, 0.0005, -0.0003, 0.0]  # a mild plumb_bob lens, so the distortion path is timed too
TRUE_SCALE, TRUE_SHIFT = 0.004, -0.02


def timed(call: Callable[[], object], repeats: int) -> tuple[np.ndarray, np.ndarray, object]:
    """(wall ms, CPU ms, last result) per call. CPU time stays meaningful on a machine other jobs share."""
    result = call()  # warm-up (caches, page faults)
    wall, cpu = np.empty(repeats), np.empty(repeats)
    for k in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        result = call()
        wall[k], cpu[k] = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return wall * 1e3, cpu * 1e3, result


def corrupt_ranges(cloud: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Junk returns (dust, multipath): `fraction` of the points moved along their ray to a range of 1-60 m."""
    corrupted = cloud.copy()
    junk = rng.random(len(cloud)) < fraction
    ranges = np.linalg.norm(cloud[junk], axis=1, keepdims=True)
    corrupted[junk] *= rng.uniform(1.0, 60.0, (int(junk.sum()), 1)) / ranges
    return corrupted


def save_plot(path: str, truth: np.ndarray, sparse: np.ndarray, fit, depth: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = np.nonzero(np.isfinite(sparse))
    inlier = fit.inlier_mask[rows, cols]
    error = np.abs(depth - truth) / truth
    figure, axes = plt.subplots(2, 2, figsize=(12, 9))
    shown = axes[0, 0].imshow(truth, cmap="turbo", vmin=0, vmax=30)
    figure.colorbar(shown, ax=axes[0, 0], label="m")
    axes[0, 0].set_title("ray-cast truth depth")
    axes[0, 1].imshow(truth, cmap="gray", vmin=0, vmax=30)
    axes[0, 1].scatter(cols[inlier], rows[inlier], s=0.3, c="tab:green", label=f"inliers ({inlier.sum()})")
    axes[0, 1].scatter(cols[~inlier], rows[~inlier], s=0.3, c="tab:red", label=f"outliers ({(~inlier).sum()})")
    axes[0, 1].set_xlim(-0.5, truth.shape[1] - 0.5)
    axes[0, 1].set_ylim(truth.shape[0] - 0.5, -0.5)
    axes[0, 1].legend(loc="upper right", markerscale=10)
    axes[0, 1].set_title("projected LiDAR pixels, robust fit classification")
    shown = axes[1, 0].imshow(depth, cmap="turbo", vmin=0, vmax=30)
    figure.colorbar(shown, ax=axes[1, 0], label="m")
    axes[1, 0].set_title(f"aligned prediction: s={fit.scale:.5g}, t={fit.shift:.4g}")
    shown = axes[1, 1].imshow(error, cmap="magma", vmin=0, vmax=0.05)
    figure.colorbar(shown, ax=axes[1, 1], label="|depth - truth| / truth")
    axes[1, 1].set_title(f"relative error, median {np.nanmedian(error):.3%}")
    for axis in axes.flat:
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--beams", type=int, default=64)
    parser.add_argument("--azimuth", type=int, default=1875)
    parser.add_argument("--outliers", type=float, default=0.2, help="fraction of LiDAR returns replaced by junk")
    parser.add_argument("--plot", help="write a PNG of truth, LiDAR inliers/outliers, aligned depth and error")
    args = parser.parse_args()

    scene = street_scene()
    rng = np.random.default_rng(0)
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, (0.0, -0.3, -0.1))
    cloud = corrupt_ranges(spinning_lidar_scan(scene, T_cam_lidar, args.beams, args.azimuth), args.outliers, rng)
    truth = render_depth(scene, K, (WIDTH, HEIGHT))  # pinhole truth; the prediction is defined on it
    pred = ((1.0 / truth - TRUE_SHIFT) / TRUE_SCALE + rng.normal(0.0, 0.15, truth.shape)).astype(np.float32)

    project = lambda: project_lidar(cloud, T_cam_lidar, K, (WIDTH, HEIGHT), D=None)  # noqa: E731
    project_distorted = lambda: project_lidar(cloud, T_cam_lidar, K, (WIDTH, HEIGHT), D=D)  # noqa: E731
    project_ms = timed(project, args.repeats)
    sparse = project_ms[2]
    distorted_ms = timed(project_distorted, args.repeats)
    fit_ms = timed(lambda: fit_scale_shift(pred, sparse, method="robust"), args.repeats)
    lstsq_ms = timed(lambda: fit_scale_shift(pred, sparse, method="lstsq"), args.repeats)
    fit, lstsq_fit = fit_ms[2], lstsq_ms[2]
    metric_ms = timed(lambda: to_metric(pred, fit), args.repeats)
    temporal = TemporalAlignmentFilter()
    filter_ms = timed(lambda: temporal.update(fit, stamp=time.perf_counter()), args.repeats)
    frame_ms = timed(lambda: to_metric(pred, fit_scale_shift(pred, project())), args.repeats)

    n_finite = int(np.count_nonzero(np.all(np.isfinite(cloud), axis=1)))
    print(f"cloud: {cloud.shape[0]} points ({n_finite} returns, {args.outliers:.0%} junk), prediction {WIDTH}x{HEIGHT}")
    print(f"LiDAR pixels: {int(np.isfinite(sparse).sum())}, robust inliers {fit.n_inliers} ({fit.inlier_ratio:.1%})")
    print(f"{'stage (' + str(args.repeats) + ' repeats)':<40}{'wall median ms':>16}{'wall p90 ms':>13}{'CPU median ms':>15}")
    for name, samples in (
        ("project_lidar (pinhole)", project_ms),
        ("project_lidar (plumb_bob)", distorted_ms),
        ("fit_scale_shift robust", fit_ms),
        ("fit_scale_shift lstsq", lstsq_ms),
        ("to_metric", metric_ms),
        ("temporal filter update", filter_ms),
        ("frame: project + robust fit + to_metric", frame_ms),
    ):
        wall, cpu, _ = samples
        print(f"{name:<40}{np.median(wall):>16.2f}{np.percentile(wall, 90):>13.2f}{np.median(cpu):>15.2f}")
    for name, result in (("robust", fit), ("lstsq", lstsq_fit)):
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = result.scale * pred + result.shift
            abs_rel = np.nanmedian(np.abs(np.where(inverse > 0, 1.0 / inverse, np.nan) - truth) / truth)
        scale_error, shift_error = result.scale / TRUE_SCALE - 1.0, result.shift / TRUE_SHIFT - 1.0
        print(
            f"{name}: scale error {scale_error:+.3%}, shift error {shift_error:+.3%}, "
            f"depth median abs rel {abs_rel:.3%}, success {result.success} ({result.reason})"
        )
    if args.plot:
        save_plot(args.plot, truth, sparse, fit, metric_ms[2])


if __name__ == "__main__":
    main()
