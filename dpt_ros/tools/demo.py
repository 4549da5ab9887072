"""`dpt-ros-demo`: the whole pipeline on a built-in sample, in one command, on a CPU.

  1. writes a deterministic sample rosbag of a synthetic drive (camera + 32-beam LiDAR + TF);
  2. starts the real depth node (a subprocess) with LiDAR alignment;
  3. replays the bag into it with rclpy and records what it publishes;
  4. runs the same core path offline on the whole scans and checks it gives the node's depth;
  5. evaluates that path against held-out LiDAR points and writes report.md.

With the preset's weights in models/ the demo uses them (`--download` fetches them first). Without, it says
so and runs a reduced but real DPT architecture with seeded random weights: the network output is then
meaningless, and the report shows how far LiDAR alignment alone gets (compare with the LiDAR-only baseline).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.bags.rosbag_io import BagError, bag_topics, iterate_messages, open_bag, stamp_to_ns
from dpt_ros.sim.drive import render_sequence
from dpt_ros.tools import cli
from dpt_ros.tools.evaluate_bag import (
    EvaluationError,
    EvaluationOptions,
    build_engine,
    evaluate_bag,
    one_line_summary,
    reproduce_node_depth,
)
from dpt_ros.tools.make_sample_bag import CAMERA_INFO_TOPIC, IMAGE_TOPIC, LIDAR_TOPIC, sample_config, write_sample_bag

PRESET = "dpt_hybrid_midas"
# A reduced real DPT (ViT-tiny-like, 0.6 M parameters) that runs ~0.2 s per frame on a laptop CPU.
DEMO_ARCHITECTURE = {"backbone": "vit", "embed_dim": 64, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3],
                     "reassemble_channels": [16, 32, 64, 64], "features": 32}
DEMO_INPUT_SIZE = (320, 224)  # network input (width, height), multiples of 32 close to the 4:3 sample
NODE_START_TIMEOUT_S = 120.0  # model loading + DDS discovery on a busy CPU
MAX_REPLAY_RATE = 0.25  # the node also decodes, aligns and publishes; a shared CPU needs headroom
RECORD_TOPICS = ["/depth", "/depth/relative", "/depth/camera_info", "/alignment", "/diagnostics"]
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"  # in a source checkout (scripts/demo sets it too)


@dataclass(frozen=True)
class DemoModel:
    weights: Path
    random_weights: bool
    architecture_overrides: str  # JSON, empty for the preset's own architecture
    input_size: tuple[int, int] | None
    description: str


def choose_model(models_dir: Path, output_dir: Path) -> DemoModel:
    """The preset's trained weights if present; otherwise seeded random weights of a reduced architecture,
    saved to a file so that the node and the offline evaluation run the very same network."""
    from dpt_ros.model.presets import default_weights_path, get_preset

    preset = get_preset(PRESET)
    trained = default_weights_path(preset, models_dir)
    if trained.exists():
        return DemoModel(trained, False, "", None, f"{PRESET} with trained weights from {trained}")
    weights = output_dir / "random_weights_reduced_dpt.pt"
    write_random_weights(weights, seed=0)
    return DemoModel(weights, True, json.dumps(DEMO_ARCHITECTURE), DEMO_INPUT_SIZE,
                     f"NO WEIGHTS at {trained} (see models/README.md): using RANDOM weights of a reduced DPT "
                     f"architecture (seeded, {weights}). Its output is noise: the demo opens the alignment's inlier gate "
                     "so the node still publishes metres, and the report compares them with the LiDAR-only "
                     "baseline: with random weights every bit of their accuracy comes from the LiDAR fit.")


def write_random_weights(path: Path, seed: int) -> None:
    """Seeded random weights of the demo architecture, in the official state-dict format the node loads.

    The depth head ends in a ReLU; at random initialisation its input is negative everywhere, which would
    make the prediction identically 0 (nothing to align). The last convolution's bias is raised so the
    output keeps the random network's spatial variation instead.
    """
    import torch

    from dpt_ros.model.dpt import build_model
    from dpt_ros.model.presets import get_preset

    architecture = {k: tuple(v) if isinstance(v, list) else v for k, v in DEMO_ARCHITECTURE.items()}
    torch.manual_seed(seed)
    model = build_model(get_preset(PRESET).with_architecture(**architecture))
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.bias += 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    torch.save(model.state_dict(), temporary)
    os.replace(temporary, path)


def node_parameters(model: DemoModel, T_cam_lidar: np.ndarray) -> dict:
    """The depth node's parameters for the demo; the offline evaluation uses the very same."""
    parameters = {
        "model": PRESET,
        "weights": str(model.weights.resolve()),
        "allow_random_weights": model.random_weights,
        "architecture_overrides": model.architecture_overrides,
        "device": "cpu",
        "lidar_alignment": True,
        "lidar_to_camera": [float(v) for v in T_cam_lidar.reshape(-1)],
        "publish_cloud": False,
        "skip_when_unsubscribed": False,
    }
    if model.input_size:
        parameters["input_size"] = list(model.input_size)
    if model.random_weights:
        # A random network's output barely correlates with depth, so the default inlier gate (30 %)
        # refuses every fit. The demo opens the gate so alignment still yields metres, and the report
        # then shows what those metres are worth next to the LiDAR-only baseline: all of their
        # accuracy comes from the LiDAR fit. Never do this with real weights.
        parameters["lidar_min_inlier_ratio"] = 0.0
    return parameters


def start_node(parameters: dict, workdir: Path) -> tuple[subprocess.Popen, Path]:
    """The real depth node as a subprocess (its log goes to workdir/depth_node.log)."""
    import yaml

    params_file = workdir / "depth_node_params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    log_path = workdir / "depth_node.log"
    env = dict(os.environ)
    profile = REPO_CONFIG / "fastdds_shm.xml"  # multi-MB images drop with the Fast DDS defaults
    if profile.exists():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    env["PYTHONUNBUFFERED"] = "1"
    remaps = [f"image:={IMAGE_TOPIC}", f"camera_info:={CAMERA_INFO_TOPIC}", f"lidar/points:={LIDAR_TOPIC}"]
    command = [sys.executable, "-m", "dpt_ros.ros.depth_node", "--ros-args", "--params-file", str(params_file)]
    for remap in remaps:
        command += ["-r", remap]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return process, log_path


def stop_node(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class CachedPredictor:
    """Runs the engine once per distinct image: node reproduction and evaluation see the same frames."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self._cache: dict[str, np.ndarray] = {}

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(rgb.tobytes()).hexdigest()
        if key not in self._cache:
            self._cache[key] = self.engine.infer(rgb)
        return self._cache[key]


@dataclass(frozen=True)
class LiveComparison:
    """The node's recorded depth vs. the offline core path on the same frames."""

    n_live: int  # depth images the node published
    n_compared: int  # of those, frames compared
    max_abs_difference: float  # in the published units (metres or relative), over finite pixels
    mismatched_validity: int  # pixels finite in one and NaN in the other
    kinds: tuple[str, ...]  # topics the node answered on


def recorded_depth(recording: Path, namespace: str = "") -> dict[int, tuple[str, np.ndarray]]:
    """Header stamp ns -> (topic without the namespace, (H, W) float32) of the node's 32FC1 outputs
    ('depth', 'depth/relative') recorded in a bag."""
    reader = open_bag(recording)
    depth: dict[int, tuple[str, np.ndarray]] = {}
    try:
        wanted = (f"{namespace}/depth", f"{namespace}/depth/relative")
        topics = [t.name for t in bag_topics(reader) if t.name in wanted]
        for topic, _, message in iterate_messages(reader, topics):
            pixels = np.frombuffer(np.asarray(message.data, dtype=np.uint8).tobytes(), dtype="<f4")
            depth[stamp_to_ns(message.header)] = (topic.removeprefix(namespace),
                                                  pixels.reshape(message.height, message.width))
    finally:
        reader.close()
    return depth


def compare_live_and_offline(live: dict[int, tuple[str, np.ndarray]], offline: list) -> LiveComparison:
    """Compare frame by frame. `offline` must come from the frames the node answered (see
    `reproduce_node_depth(only_stamps=...)`), so both temporal filters saw the same sequence."""
    worst, mismatched, compared = 0.0, 0, 0
    for stamp, aligned in offline:
        if stamp not in live:
            continue
        topic, values = live[stamp]
        if (topic == "/depth") != aligned.is_metric or values.shape != aligned.values.shape:
            mismatched += values.size
            compared += 1
            continue
        both = np.isfinite(values) & np.isfinite(aligned.values)
        mismatched += int(np.count_nonzero(np.isfinite(values) != np.isfinite(aligned.values)))
        if both.any():
            worst = max(worst, float(np.max(np.abs(values[both] - aligned.values[both]))))
        compared += 1
    return LiveComparison(len(live), compared, worst, mismatched, tuple(sorted({t for t, _ in live.values()})))


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for everything it writes")
    parser.add_argument("--models", type=Path, default=Path("models"), help="where trained weights are looked for")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rate", type=float,
                        help="replay speed factor (default: slow enough for this machine to answer every frame)")
    parser.add_argument("--download", action="store_true",
                        help=f"first fetch the {PRESET} weights into --models (dpt-ros-weights download), then run with them")
    args = parser.parse_args(argv)
    from dpt_ros.model.checkpoint import WeightsError
    from dpt_ros.tools.replay_bag import ReplayOptions, replay

    if args.download:
        from dpt_ros.model.download import DownloadError
        from dpt_ros.model.presets import get_preset
        from dpt_ros.tools.weights import download

        try:
            download([get_preset(PRESET)], args.models, url=None, mirror=None, progress=True)
        except (DownloadError, OSError) as error:
            print(f"dpt-ros-demo: {error}", file=sys.stderr)
            return 2
    started = time.monotonic()
    output = args.output
    output.mkdir(parents=True, exist_ok=True)
    try:
        config = sample_config(frames=args.frames)
        bag = write_sample_bag(output / "sample_bag", "mcap", config, overwrite=True).path
        print(f"[1/5] sample bag {bag}: {args.frames} frames {config.camera.width}x{config.camera.height}, "
              f"{config.lidar.n_beams}-beam LiDAR ({time.monotonic() - started:.0f} s)")
        model = choose_model(args.models, output)
        parameters = node_parameters(model, config.rig.T_optical_lidar)
        node_config = DepthNodeConfig.from_mapping(parameters)
        engine, model_info = build_engine(node_config)
        model_info["random_weights"] = model.random_weights  # a seeded random file counts as random
        predictor = CachedPredictor(engine)
        rate = args.rate or replay_rate(predictor, next(render_sequence(config)).camera.rgb, config.frame_period)
        print(f"[2/5] model: {model.description} Replaying at {rate:.2g}x real time.")

        node, log_path = start_node(parameters, output)
        recording = output / "node_outputs"
        try:
            # The node takes its extrinsic from a parameter: the bag's /tf_static is not replayed (with ROS from
            # PyPI its message package is not installed, and replaying it would only print a warning).
            published = replay(bag, ReplayOptions(
                rate=rate, topics=[IMAGE_TOPIC, CAMERA_INFO_TOPIC, LIDAR_TOPIC], wait_for_subscriber=IMAGE_TOPIC,
                wait_timeout=NODE_START_TIMEOUT_S, record=recording, record_topics=RECORD_TOPICS, linger=5.0))
        finally:
            stop_node(node)
        counts = _recorded_counts(recording)
        print(f"[3/5] depth node replay: published {published.get(IMAGE_TOPIC, 0)} images; the node answered with "
              f"{counts.get('/depth', 0)} metric and {counts.get('/depth/relative', 0)} relative depth images "
              f"(recorded in {recording}, node log {log_path}) ({time.monotonic() - started:.0f} s)")

        output_kind = engine.preset.output_kind
        options = EvaluationOptions(node_config=node_config)
        live = recorded_depth(recording)
        offline = reproduce_node_depth(bag, predictor, output_kind, options, only_stamps=set(live))
        comparison = compare_live_and_offline(live, offline)
        print(f"[4/5] live node vs offline core path: {comparison.n_compared} frames compared, max |difference| "
              f"{comparison.max_abs_difference:.2e} ({', '.join(comparison.kinds) or 'no output'}), "
              f"{comparison.mismatched_validity} pixels valid in only one ({time.monotonic() - started:.0f} s)")
        report, summary = evaluate_bag(bag, predictor, output_kind, output / "evaluation", options,
                                       model_info=model_info)
    except (BagError, EvaluationError, WeightsError, ValueError) as error:
        print(f"dpt-ros-demo: {error}", file=sys.stderr)
        return 2
    print(f"[5/5] evaluation ({time.monotonic() - started:.0f} s in all)")
    print(f"report: {report}")
    print(one_line_summary(summary))
    return 0


def replay_rate(predictor: CachedPredictor, rgb: np.ndarray, frame_period: float) -> float:
    """A replay speed at which the node (same model, same CPU) answers every frame: one frame per four
    inference times, at most MAX_REPLAY_RATE. Times one inference (after a warm-up)."""
    predictor.engine.infer(rgb)
    start = time.perf_counter()
    predictor.infer(rgb)  # also caches the first frame for the offline run
    seconds = time.perf_counter() - start
    return min(MAX_REPLAY_RATE, frame_period / (4.0 * seconds))


def _recorded_counts(recording: Path) -> dict[str, int]:
    if not recording.exists():
        return {}
    reader = open_bag(recording)
    try:
        return {topic.name: topic.count for topic in bag_topics(reader)}
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
