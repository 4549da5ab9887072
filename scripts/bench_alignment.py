#!/usr/bin/env python3
"""Time LiDAR projection + robust alignment per frame: a 64-beam scan (120k points) and a 640x480 prediction.

Usage, from the repository root (with dpt_ros importable, e.g. PYTHONPATH=.):
    python scripts/bench_alignment.py [--repeats 100] [--beams 64] [--azimuth 1875]
Prints median / 90th-percentile milliseconds per stage and the accuracy of the fit on the synthetic scene.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from dpt_ros.core.alignment import fit_scale_shift, to_metric
from dpt_ros.core.lidar_projection import project_lidar
from dpt_ros.core.synthetic_scene import (
    OPTICAL_FROM_LIDAR_ROTATION,
    pose,
    render_depth,
    spinning_lidar_scan,
    street_scene,
)
from dpt_ros.core.temporal_filter import TemporalAlignmentFilter

WIDTH, HEIGHT = 640, 480
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
D = [-0.05, 0.01, 0.0005, -0.0003, 0.0]  # a mild plumb_bob lens, so the distortion path is timed too
TRUE_SCALE, TRUE_SHIFT = 0.004, -0.02


def timed(call: Callable[[], object], repeats: int) -> tuple[np.ndarray, object]:
    result = call()  # warm-up (caches, page faults)
    samples = np.empty(repeats)
    for k in range(repeats):
        start = time.perf_counter()
        result = call()
        samples[k] = time.perf_counter() - start
    return samples * 1e3, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--beams", type=int, default=64)
    parser.add_argument("--azimuth", type=int, default=1875)
    args = parser.parse_args()

    scene = street_scene()
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, (0.0, -0.3, -0.1))
    cloud = spinning_lidar_scan(scene, T_cam_lidar, args.beams, args.azimuth)
    truth = render_depth(scene, K, (WIDTH, HEIGHT))  # pinhole truth; the prediction is defined on it
    rng = np.random.default_rng(0)
    pred = ((1.0 / truth - TRUE_SHIFT) / TRUE_SCALE + rng.normal(0.0, 0.15, truth.shape)).astype(np.float32)

    project = lambda: project_lidar(cloud, T_cam_lidar, K, (WIDTH, HEIGHT), D=None)  # noqa: E731
    project_distorted = lambda: project_lidar(cloud, T_cam_lidar, K, (WIDTH, HEIGHT), D=D)  # noqa: E731
    project_ms, sparse = timed(project, args.repeats)
    distorted_ms, _ = timed(project_distorted, args.repeats)
    fit_ms, fit = timed(lambda: fit_scale_shift(pred, sparse, method="robust"), args.repeats)
    lstsq_ms, _ = timed(lambda: fit_scale_shift(pred, sparse, method="lstsq"), args.repeats)
    metric_ms, depth = timed(lambda: to_metric(pred, fit), args.repeats)
    temporal = TemporalAlignmentFilter()
    filter_ms, _ = timed(lambda: temporal.update(fit, stamp=time.perf_counter()), args.repeats)
    frame_ms, _ = timed(lambda: to_metric(pred, fit_scale_shift(pred, project())), args.repeats)

    n_finite = int(np.count_nonzero(np.all(np.isfinite(cloud), axis=1)))
    print(f"cloud: {cloud.shape[0]} points ({n_finite} returns), prediction {WIDTH}x{HEIGHT}, {args.repeats} repeats")
    print(f"LiDAR pixels: {int(np.isfinite(sparse).sum())}, inliers {fit.n_inliers} ({fit.inlier_ratio:.1%})")
    print(f"{'stage':<40}{'median ms':>10}{'p90 ms':>10}")
    for name, samples in (
        ("project_lidar (pinhole)", project_ms),
        ("project_lidar (plumb_bob)", distorted_ms),
        ("fit_scale_shift robust", fit_ms),
        ("fit_scale_shift lstsq", lstsq_ms),
        ("to_metric", metric_ms),
        ("temporal filter update", filter_ms),
        ("frame: project + robust fit + to_metric", frame_ms),
    ):
        print(f"{name:<40}{np.median(samples):>10.2f}{np.percentile(samples, 90):>10.2f}")
    scale_error = fit.scale / TRUE_SCALE - 1.0
    shift_error = fit.shift / TRUE_SHIFT - 1.0
    abs_rel = np.nanmedian(np.abs(depth - truth) / truth)
    print(f"fit: scale error {scale_error:+.3%}, shift error {shift_error:+.3%}, depth median abs rel {abs_rel:.3%}")


if __name__ == "__main__":
    main()
