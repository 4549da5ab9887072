"""`dpt-ros-bench`: per-stage latency of the depth node's image -> depth + point cloud path.

It times the node's own code: the DepthPipeline that `build_depth_pipeline` wires for the preset (as the node
does), called through `process_batch` as the node calls it. Stages (median and p95 after warm-up):
  prepare      uint8 host image -> normalised network input on the device (upload + resize + normalise)
  forward      the network
  post         resize back to the image
  copy         device -> host copy of the prediction
  depth_stage  the node's depth stage: metric presets as they are; relative presets LiDAR-aligned to metres
               (projection, fit, temporal filter), with a scan made from the prediction itself so the fit
               holds as it would with a trained network and a real LiDAR
  resize       the output_scale resize (a no-op at the default scale 1)
  cloud        the point cloud (back-projection + packing, `geometry.pointcloud.build_point_cloud`)
  total        the whole `process_batch` call
On a GPU the stage clock synchronises at each stage boundary so every stage is charged its own device time.
Also: images/s, peak device memory, the accuracy cost of reduced precision (median relative depth
difference vs fp32 on the same input), batched multi-camera throughput of the engine, and with --compare-hf
the latency of `transformers`' DPTForDepthEstimation on the same weights, input, device and precision.

Without weights in models/ the network has random weights (timings are unaffected; the precision
comparison then measures numerical error on an arbitrary function, and says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from dpt_ros.alignment.lidar_depth import LidarScan
from dpt_ros.app.depth_setup import build_depth_pipeline
from dpt_ros.app.node_config import DepthNodeConfig, depth_preset_names
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.pointcloud import back_project
from dpt_ros.model.architecture import DPTArchitecture
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.engine import InferenceEngine, StageTimer
from dpt_ros.model.presets import get_preset, resolve_weights_path
from dpt_ros.pipeline.depth import DepthPipeline, Frame, LidarFrameInput
from dpt_ros.pipeline.stats import StageClock
from dpt_ros.tools import cli

STAGES = ("prepare", "forward", "post", "copy", "depth_stage", "resize", "cloud")
# Points of the scan made for relative presets: a 64-beam spinning LiDAR's revolution.
LIDAR_POINTS = 120_000
# Metres the made-up scan spans: the prediction's 1st..99th percentile maps onto this depth range.
SCAN_DEPTH_RANGE = (2.0, 50.0)


class _ClockedEngine:
    """The node's engine with its infer_batch stages timed on `clock`; the pipeline calls it unchanged."""

    def __init__(self, engine: InferenceEngine, clock: StageTimer) -> None:
        self.engine = engine
        self.clock = clock

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        return self.infer_batch([rgb])[0]

    def infer_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.engine.infer_batch(images, clock=self.clock)


def scan_from_prediction(
    prediction: np.ndarray, camera: PinholeIntrinsics, n_points: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_points, 3) float32 points in the camera optical frame whose depth is an exact affine function of the
    (H, W) relative inverse depth `prediction`: the LiDAR fit on them succeeds, so the aligned depth and the
    cloud are built every frame. Pixels are drawn at random (with repetition when the image is smaller)."""
    low, high = np.nanpercentile(prediction, [1.0, 99.0])
    if not high > low:
        raise ValueError("the prediction is constant: no LiDAR fit can hold on it")
    near, far = SCAN_DEPTH_RANGE
    scale = (1.0 / near - 1.0 / far) / (high - low)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = 1.0 / (scale * (prediction - low) + 1.0 / far)  # <= 0 or beyond: NaN in back_project
    xyz = back_project(depth.astype(np.float32), camera).reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz[:, 2])]
    return xyz[rng.choice(len(xyz), n_points, replace=n_points > len(xyz))]


class NodePathBench:
    """The node's pipeline on one camera's frames, with every stage timed."""

    def __init__(self, pipeline: DepthPipeline, engine: InferenceEngine, config: DepthNodeConfig,
                 camera: PinholeIntrinsics, scan: np.ndarray | None) -> None:
        synchronize = torch.cuda.synchronize if engine.device.type == "cuda" else None
        self.engine_clock = StageClock(synchronize=synchronize)
        self.pipeline = DepthPipeline(_ClockedEngine(engine, self.engine_clock), pipeline.depth_stage)
        self.options = config.output_options()
        self.camera, self.scan = camera, scan
        self.synchronize = synchronize
        self.samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
        self._frames = 0

    def step(self, image: np.ndarray, record: bool) -> None:
        stamp = self._frames * 0.1  # seconds; the temporal filter wants increasing stamps
        self._frames += 1
        lidar = None
        if self.scan is not None:
            lidar = LidarFrameInput(stamp, self.camera, LidarScan(self.scan, np.eye(4), stamp, "parameter"))
        frame = Frame(image, self.camera, lidar=lidar)
        if self.synchronize is not None:
            self.synchronize()
        start = time.perf_counter()
        outputs = self.pipeline.process_batch([frame], self.options, want_cloud=[True], want_colored=[False])[0]
        total_ms = (time.perf_counter() - start) * 1e3
        if not record:
            return
        timings = {**self.engine_clock.timings_ms, **outputs.timings_ms, "total": total_ms}
        for stage, values in self.samples.items():
            if stage in timings:
                values.append(timings[stage])

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            stage: {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95))}
            for stage, values in self.samples.items()
            if values
        }


def _time_calls(call: Callable[[], object], device: torch.device, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iterations):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def sample_image(height: int, width: int) -> np.ndarray:
    """A deterministic textured image (gradients + stripes) so reduced precision has structure to disturb."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 127 + 120 * np.sin(cols / 17.0)
    green = 255 * rows / max(height - 1, 1)
    blue = 127 + 120 * np.cos((rows + cols) / 23.0)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def hf_reference(engine: InferenceEngine):
    """`transformers`' DPTForDepthEstimation carrying the engine's weights (ViT-based depth presets)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    from dpt_ros.model.checkpoint import official_to_hf

    arch = engine.preset.architecture
    kwargs = dict(
        hidden_size=arch.embed_dim, num_hidden_layers=arch.depth, num_attention_heads=arch.num_heads,
        intermediate_size=int(arch.embed_dim * arch.mlp_ratio), image_size=384, neck_hidden_sizes=list(arch.reassemble_channels),
        fusion_hidden_size=arch.features, readout_type=arch.readout, layer_norm_eps=arch.layer_norm_eps,
    )
    if arch.backbone == "vit_hybrid":
        config = DPTConfig(is_hybrid=True, backbone_out_indices=[0, 1, *arch.taps], **kwargs)
    else:
        config = DPTConfig(backbone_out_indices=list(arch.taps), **kwargs)
    model = DPTForDepthEstimation(config)
    model.load_state_dict(official_to_hf(engine.model.state_dict()))
    return model.to(engine.device).eval()


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dpt_hybrid_midas", choices=depth_preset_names())
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--size", default=(480, 640), type=cli.image_size, help="image HxW (default 480x640)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--cuda-graphs", action="store_true", help="replay the network from a CUDA graph")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--cameras", type=int, default=0, help="also time N cameras batched vs N sequential calls")
    parser.add_argument("--compare-hf", action="store_true", help="time transformers' DPT at the network input size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=0, help="seeds random weights (when no weights file exists)")
    parser.add_argument("--architecture-overrides", type=json.loads, default={},
                        help='JSON of architecture fields for smoke runs, e.g. {"embed_dim": 64, "depth": 4}')
    args = parser.parse_args(argv)

    height, width = args.size
    preset = get_preset(args.preset)
    if args.compare_hf and not isinstance(preset.architecture, DPTArchitecture):
        print(f"error: --compare-hf times transformers' DPT and supports DPT presets only, not {preset.name}",
              file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)  # random weights: the same network for one seed
    try:
        # Timing needs no trained weights, but a --weights file that is not there is a mistake to report.
        config = DepthNodeConfig(
            model=preset.name, weights=str(args.weights or ""), allow_random_weights=args.weights is None,
            architecture_overrides=json.dumps(args.architecture_overrides) if args.architecture_overrides else "",
            device=args.device, precision=args.precision, compile=args.compile, cuda_graphs=args.cuda_graphs,
            lidar_alignment=not preset.is_metric,
        )  # fmt: skip
        pipeline, engine = build_depth_pipeline(config)
    except (WeightsError, ValueError, TypeError) as error:  # TypeError: an unknown architecture field
        return cli.user_error(parser.prog, error)
    preset = engine.preset
    if engine.random_weights:
        # Random weights often leave the head's final ReLU all-zero, or nearly constant (a LiDAR fit rightly
        # refuses that): a positive last bias and 20x the last layer's weights make the depth map vary across
        # the image, so the precision comparison and the LiDAR fit below have something to use.
        with torch.no_grad():
            output_conv = engine.model.depth_output_conv()
            output_conv.bias.fill_(1.0)
            output_conv.weight.mul_(20.0)
    device = engine.device
    image = sample_image(height, width)
    camera = PinholeIntrinsics(0.8 * width, 0.8 * width, width / 2, height / 2, width, height)
    scan = None
    if not preset.is_metric:
        scan = scan_from_prediction(engine.infer(image), camera, LIDAR_POINTS, np.random.default_rng(0))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    bench = NodePathBench(pipeline, engine, config, camera, scan)
    for iteration in range(args.warmup + args.iterations):
        bench.step(image, record=iteration >= args.warmup)
    stages = bench.summary()
    net_h, net_w = engine.network_size(height, width)
    results: dict[str, object] = {
        "preset": preset.name, "image": [height, width], "network_input": [net_h, net_w],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "precision": args.precision, "compile": args.compile,
        "cuda_graphs": args.cuda_graphs, "random_weights": engine.random_weights, "stages": stages,
        "images_per_s": 1e3 / stages["total"]["median_ms"],
        "frames_with_cloud": len(bench.samples["cloud"]), "frames_timed": args.iterations,
    }
    if device.type == "cuda":
        results["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20

    if args.precision != "fp32":
        reference = InferenceEngine(preset, resolve_weights_path(config.weights, preset), args.device, "fp32",
                                    allow_random_weights=True)
        reference.model.load_state_dict(engine.model.state_dict())
        full, reduced = reference.infer(image), engine.infer(image)
        informative = np.abs(full) > 1e-3 * np.abs(full).max()
        relative = np.abs(reduced - full)[informative] / np.abs(full)[informative]
        results["median_relative_difference_vs_fp32"] = float(np.median(relative))
        results["fraction_of_pixels_compared"] = float(informative.mean())

    if args.cameras > 1:
        views = [np.roll(image, shift * 7, axis=1) for shift in range(args.cameras)]
        batched = _time_calls(lambda: engine.infer_batch(views), device, args.iterations // 2 or 1, 3)
        sequential = _time_calls(lambda: [engine.infer(v) for v in views], device, args.iterations // 2 or 1, 3)
        results["cameras"] = {
            "count": args.cameras, "batched_median_ms": float(np.median(batched)),
            "sequential_median_ms": float(np.median(sequential)),
            "throughput_ratio": float(np.median(sequential) / np.median(batched)),
        }

    if args.compare_hf:
        side = preset.input_size[0]
        x = torch.randn(1, 3, side, side, device=device)
        ours = _time_calls(lambda: engine.forward(x), device, args.iterations, args.warmup)
        hf_model = hf_reference(engine)
        autocast = engine._autocast
        with torch.inference_mode():
            def run_hf():
                with autocast():
                    return hf_model(pixel_values=x).predicted_depth
            theirs = _time_calls(run_hf, device, args.iterations, args.warmup)
        results["compare_hf"] = {
            "input": [side, side], "ours_forward_median_ms": float(np.median(ours)),
            "transformers_forward_median_ms": float(np.median(theirs)),
            "latency_ratio_ours_over_hf": float(np.median(ours) / np.median(theirs)),
        }

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
