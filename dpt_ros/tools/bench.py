"""`dpt-ros-bench`: per-stage latency of the image -> depth + point cloud pipeline.

Stages (CUDA events on a GPU, perf_counter on the CPU; median and p95 after warm-up):
  prepare  uint8 host image -> normalised network input on the device (upload + resize + normalise)
  forward  the network
  post     resize to the image, inverse depth -> metres
  cloud    back-projection to xyz
  copy     device -> host copies of depth and xyz
Also: images/s, peak device memory, the accuracy cost of reduced precision (median relative depth
difference vs fp32 on the same input), batched multi-camera throughput, and with --compare-hf the
latency of `transformers`' DPTForDepthEstimation on the same weights, input, device and precision.

Without weights in models/ the network has random weights (timings are unaffected; the precision
comparison then measures numerical error on an arbitrary function, and says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dpt_ros.model.architecture import DPTArchitecture
from dpt_ros.model.engine import InferenceEngine, backproject
from dpt_ros.model.presets import PRESETS, get_preset

STAGES = ("prepare", "forward", "post", "cloud", "copy")


class StageTimer:
    """Collects per-stage durations in ms; on CUDA with events so no stage waits for the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self._marks: list[tuple[str, object]] = []

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._marks = [("", self._mark())]

    def lap(self, stage: str) -> None:
        self._marks.append((stage, self._mark()))

    def stop(self, record: bool) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        if not record:
            return
        for (_, before), (stage, after) in zip(self._marks, self._marks[1:]):
            ms = before.elapsed_time(after) if self.cuda else (after - before) * 1e3
            self.samples[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        result = {s: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))} for s, v in self.samples.items() if v}
        totals = np.sum([self.samples[s] for s in STAGES if self.samples[s]], axis=0)
        result["total"] = {"median_ms": float(np.median(totals)), "p95_ms": float(np.percentile(totals, 95))}
        return result


def pipeline_step(
    engine: InferenceEngine, images: list[np.ndarray], K: torch.Tensor, timer: StageTimer
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the node's image -> depth + xyz path with a lap after each stage. Relative presets
    stand in 1 / inverse depth for the LiDAR-aligned map (alignment is a separate, CPU-side stage)."""
    height, width = images[0].shape[:2]
    timer.start()
    batch = engine.prepare_batch(images)
    timer.lap("prepare")
    out = engine.forward(batch)
    timer.lap("forward")
    depth = engine.resize_to_image(out, height, width)
    if not engine.preset.is_metric:
        depth = 1.0 / depth.clamp_min(1e-6)
    timer.lap("post")
    xyz = backproject(depth, K)
    timer.lap("cloud")
    # Views of the engine's pinned buffers: a node serialises them into messages straight away.
    depth_host, xyz_host = engine.to_host("depth", depth, copy=False), engine.to_host("points", xyz, copy=False)
    timer.lap("copy")
    return depth_host, xyz_host


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
    parser = argparse.ArgumentParser(prog="dpt-ros-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dpt_hybrid_midas", choices=sorted(PRESETS))
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--size", default="480x640", help="image HxW")
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

    height, width = (int(v) for v in args.size.split("x"))
    preset = get_preset(args.preset)
    if args.compare_hf and not isinstance(preset.architecture, DPTArchitecture):
        print(f"error: --compare-hf times transformers' DPT and supports DPT presets only, not {preset.name}",
              file=sys.stderr)
        return 2
    if args.architecture_overrides:
        preset = preset.with_architecture(**args.architecture_overrides)
    weights = args.weights or Path("models") / preset.weights_file
    torch.manual_seed(args.seed)  # random weights: the same network for one seed
    engine = InferenceEngine(preset, weights, args.device, args.precision, allow_random_weights=True,
                             compile_model=args.compile, cuda_graphs=args.cuda_graphs)
    if engine.random_weights and not preset.is_segmentation:
        # Random weights often leave the head's final ReLU all-zero; a positive last bias keeps the
        # depth map informative so the precision comparison below measures something.
        with torch.no_grad():
            engine.model.depth_output_conv().bias.fill_(1.0)
    device = engine.device
    image = sample_image(height, width)
    K = torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1]], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    timer = StageTimer(device)
    for iteration in range(args.warmup + args.iterations):
        pipeline_step(engine, [image], K, timer)
        timer.stop(record=iteration >= args.warmup)
    stages = timer.summary()
    net_h, net_w = engine.network_size(height, width)
    results: dict[str, object] = {
        "preset": preset.name, "image": [height, width], "network_input": [net_h, net_w],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "precision": args.precision, "compile": args.compile,
        "cuda_graphs": args.cuda_graphs, "random_weights": engine.random_weights, "stages": stages,
        "images_per_s": 1e3 / stages["total"]["median_ms"],
    }
    if device.type == "cuda":
        results["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20

    if args.precision != "fp32":
        reference = InferenceEngine(preset, weights, args.device, "fp32", allow_random_weights=True)
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
