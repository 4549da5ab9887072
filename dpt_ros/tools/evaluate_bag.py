"""`dpt-ros-eval BAG`: score the depth node's core path on a recorded bag against held-out LiDAR points.

No ROS runtime needed (rosbags + the ROS-free core). Each frame runs exactly what the node runs — the node's
configuration (`DepthNodeConfig`, from its parameters file and options), its `DepthPipeline` with the same
inference engine and LiDAR-aligned depth stage (projection, robust scale/shift fit, temporal filter, metres) —
but the stage only sees the *fitting* part of each scan; the *held-out* part scores the result, together
with baselines on the same points: plain least squares, median scaling and LiDAR only.

Writes metrics.json, per_frame.csv, PNG plots and report.md into the run folder (and optionally a bag with
the depth for RViz / Foxglove). Problems with the bag end with one clear message and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from dpt_ros.alignment.fit import DEPTH, INVERSE_DEPTH, fit_samples, to_metric
from dpt_ros.alignment.lidar_depth import AlignedDepth, LidarScan
from dpt_ros.app.depth_setup import depth_stage
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.bags.frames import FrameInputs, PairedFrame, TopicSelection, decoded_frames, message_field, select_topics
from dpt_ros.bags.rosbag_io import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    BagError,
    BagWriter,
    bag_topics,
    make_camera_info,
    make_image,
    make_packed_cloud,
    open_bag,
)
from dpt_ros.eval.holdout import (
    HoldoutConfig,
    PixelSamples,
    drop_shared_pixels,
    holdout_mask,
    median_scale,
    nearest_fitting_depth,
    score_points,
    static_pixel_flicker,
)
from dpt_ros.geometry.lidar_projection import keep_nearest_per_pixel, project_points
from dpt_ros.geometry.pointcloud import PackedCloud
from dpt_ros.pipeline.depth import RELATIVE_INVERSE_DEPTH, DepthEstimate, DepthPipeline, Frame, LidarFrameInput
from dpt_ros.tools.evaluation_report import FrameRecord, plot_example, summarise, write_run_folder


class DepthPredictor(Protocol):
    """What the evaluator needs of a model: dpt_ros.InferenceEngine or any stand-in (tests inject exact ones).

    infer: (H, W, 3) uint8 RGB -> (H, W) float32 at the image's resolution, in ``output_kind`` units.
    """

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


def _node_defaults() -> DepthNodeConfig:
    return DepthNodeConfig(lidar_alignment=True)


@dataclass(frozen=True)
class EvaluationOptions:
    """node_config: the depth node's settings (lidar_* for pairing, extrinsic and alignment; intrinsics_source).
    Its lidar_to_camera, when set, overrides the bag's TF, as in the node."""

    holdout: HoldoutConfig = HoldoutConfig()
    node_config: DepthNodeConfig = dataclasses.field(default_factory=_node_defaults)
    min_depth: float = 1e-3  # metres, scoring range (KITTI protocol)
    max_depth: float = 80.0
    max_frames: int | None = None
    n_examples: int = 3
    output_bag: Path | None = None
    progress: bool = True


class EvaluationError(RuntimeError):
    """The evaluation cannot go on (no transform, nothing scored...); the message says what to do."""


def _pixel_samples_of_sparse(sparse: np.ndarray | None) -> PixelSamples:
    if sparse is None:
        return PixelSamples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    rows, cols = np.nonzero(np.isfinite(sparse))
    return PixelSamples(rows, cols, sparse[rows, cols].astype(np.float64))


def _baselines(prediction: np.ndarray, output_kind: str, fitting: PixelSamples, held: PixelSamples,
               max_depth: float) -> dict[str, np.ndarray]:
    """(M,) metres at the held-out pixels for plain least squares, median scaling and LiDAR only."""
    at_fit = fitting.values_of(prediction)
    space = INVERSE_DEPTH if output_kind == RELATIVE_INVERSE_DEPTH else DEPTH
    least_squares = fit_samples(at_fit, fitting.depth, space=space, method="lstsq")
    ls_depth = (held.values_of(to_metric(prediction, least_squares, max_depth=max_depth))
                if least_squares.success else np.full(len(held), np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth_up_to_scale = 1.0 / prediction if space == INVERSE_DEPTH else prediction.astype(np.float64)
        depth_up_to_scale = np.where(depth_up_to_scale > 0, depth_up_to_scale, np.nan)
    scale = median_scale(fitting.values_of(depth_up_to_scale), fitting.depth)
    return {
        "least_squares": ls_depth,
        "median_scaling": scale * held.values_of(depth_up_to_scale),
        "lidar_only": nearest_fitting_depth(fitting, held),
    }


class _RecordingPredictor:
    """Passes inference through and keeps the last raw prediction (the baselines start from it)."""

    def __init__(self, predictor: DepthPredictor) -> None:
        self.predictor = predictor
        self.last: np.ndarray | None = None

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        self.last = np.asarray(self.predictor.infer(rgb), dtype=np.float32)
        if self.last.shape != rgb.shape[:2]:
            raise EvaluationError(f"the model returned {self.last.shape} for a {rgb.shape[:2]} image")
        return self.last


@dataclass(frozen=True)
class NodeFrame:
    prediction: np.ndarray  # (H, W) raw network output
    depth: DepthEstimate  # what the node publishes: metres on 'depth' or relative on 'depth/relative'
    aligned: AlignedDepth  # the LiDAR stage's result (fit, filter state, sparse depth)
    timings_ms: dict[str, float]
    cloud: PackedCloud | None  # the node's point cloud (metric frames, when wanted)


class NodePath:
    """The node's per-frame processing: its DepthPipeline with the depth stage it builds for this config."""

    def __init__(self, predictor: DepthPredictor, output_kind: str, config: DepthNodeConfig) -> None:
        # scored at the image's resolution (output_scale 1), LiDAR alignment on
        self.config = config.with_changes({"lidar_alignment": True, "output_scale": 1.0})
        self.recorder = _RecordingPredictor(predictor)
        self.pipeline = DepthPipeline(self.recorder, depth_stage(self.config, output_kind))

    def process(self, inputs: FrameInputs, fitting_xyz: np.ndarray, stamp_ns: int, want_cloud: bool = False,
                ) -> NodeFrame:
        """One frame aligned to ``fitting_xyz`` (the node's point cloud too, if wanted and metric)."""
        stamp = stamp_ns / 1e9
        scan = LidarScan(fitting_xyz, inputs.T_cam_lidar, stamp, inputs.extrinsic_source)
        frame = Frame(inputs.rgb, inputs.intrinsics, LidarFrameInput(stamp, inputs.lens, scan))
        outputs = self.pipeline.process(frame, self.config.output_options(), want_cloud=want_cloud)
        return NodeFrame(self.recorder.last, outputs.depth, outputs.alignment, outputs.timings_ms, outputs.cloud)


def _record_alignment(record: FrameRecord, aligned: AlignedDepth) -> None:
    """The published (filtered) s, t and filter state, and this frame's own fit or why it failed."""
    filtered, fit = aligned.filtered, aligned.fit
    if filtered is not None:
        record.filter_state = filtered.state.value
        record.scale, record.shift = (filtered.scale, filtered.shift) if filtered.usable else (math.nan, math.nan)
    if fit is not None and fit.success:
        record.fit_scale, record.fit_shift, record.fit_inlier_ratio = fit.scale, fit.shift, fit.inlier_ratio
    else:
        record.fit_reason = fit.reason if fit is not None else (aligned.note or "no fit")


class BagEvaluation:
    """One evaluation run: feed it the bag's frames in order (the aligner's temporal filter is stateful)."""

    def __init__(self, predictor: DepthPredictor, output_kind: str, options: EvaluationOptions,
                 output: BagWriter | None = None) -> None:
        self.output_kind, self.options = output_kind, options
        self.node = NodePath(predictor, output_kind, options.node_config)
        self.records: list[FrameRecord] = []
        self.examples: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}  # index -> rgb, the node's depth
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # rgb, depth of the last scored frame
        self.output = output

    def process(self, pair: PairedFrame, inputs: FrameInputs, example: bool) -> FrameRecord:
        """Run the node's path on the fitting points, score the held-out ones, and record everything."""
        record = FrameRecord(pair.index, pair.stamp_ns, n_lidar=len(inputs.xyz),
                             lidar_offset_ms=pair.lidar_offset_ns / 1e6)
        held_mask = holdout_mask(len(inputs.xyz), self.options.holdout, pair.index, inputs.ring)
        node_frame = self.node.process(inputs, inputs.xyz[~held_mask], pair.stamp_ns, self.output is not None)
        node_depth = node_frame.depth.values if node_frame.depth.is_metric else None
        record.timings_ms.update(node_frame.timings_ms)
        start = time.perf_counter()
        self._score(record, inputs, inputs.xyz[held_mask], node_frame, node_depth)
        record.timings_ms["scoring"] = (time.perf_counter() - start) * 1e3
        _record_alignment(record, node_frame.aligned)
        if node_depth is not None:
            if self._previous is not None:
                record.flicker = static_pixel_flicker(self._previous[0], inputs.rgb, self._previous[1], node_depth)
            self._previous = (inputs.rgb, node_depth)
        if example:
            self.examples[pair.index] = (inputs.rgb, node_depth)
        if self.output is not None and node_depth is not None:
            _write_outputs(self.output, pair, node_depth, node_frame.cloud)
        return record

    def _score(self, record: FrameRecord, inputs: FrameInputs, held_xyz: np.ndarray, node_frame: NodeFrame,
               node_depth: np.ndarray | None) -> None:
        """Every method's metres at the held-out pixels that no fitting point touches, and their scores."""
        lens, config = inputs.lens, self.node.config
        projected = keep_nearest_per_pixel(project_points(
            held_xyz, inputs.T_cam_lidar, lens.K, lens.image_size, lens.D, lens.distortion_model,
            config.lidar_min_range, config.lidar_max_range), lens.image_size)
        fitting = _pixel_samples_of_sparse(node_frame.aligned.sparse_depth)  # what the node's fit saw
        held = drop_shared_pixels(PixelSamples(projected.row, projected.col, projected.depth.astype(np.float64)),
                                  fitting, lens.image_size[0])
        predictions = {"node": held.values_of(node_depth) if node_depth is not None else np.full(len(held), np.nan)}
        predictions.update(_baselines(node_frame.prediction, self.output_kind, fitting, held, config.lidar_max_depth))
        record.scores = {method: score_points(values, held.depth, self.options.min_depth, self.options.max_depth)
                         for method, values in predictions.items()}
        record.predictions, record.held_out = predictions, held
        record.n_fitting, record.n_held_out = len(fitting), len(held)

    def skip(self, index: int, stamp_ns: int, reason: str) -> None:
        self.records.append(FrameRecord(index, stamp_ns, reason=reason))


OUTPUT_TOPICS = {"/eval/depth": IMAGE, "/eval/camera_info": CAMERA_INFO, "/eval/points": POINT_CLOUD}


def _write_outputs(bag: BagWriter, pair: PairedFrame, depth: np.ndarray, cloud: PackedCloud | None) -> None:
    """The node's metric depth (32FC1), its camera_info and point cloud, stamped and framed like the image."""
    stamp, frame_id = pair.stamp_ns, pair.image.header.frame_id
    K = np.asarray(message_field(pair.camera_info, "k", "K"), dtype=np.float64).reshape(3, 3)
    bag.write("/eval/depth", stamp, make_image(depth, "32FC1", stamp, frame_id))
    bag.write("/eval/camera_info", stamp, make_camera_info(K, depth.shape[1], depth.shape[0], stamp, frame_id))
    if cloud is not None:
        bag.write("/eval/points", stamp, make_packed_cloud(cloud, stamp, frame_id))


def evaluate_bag(bag_path: Path, predictor: DepthPredictor, output_kind: str, run_dir: Path,
                 options: EvaluationOptions = EvaluationOptions(), topics: dict[str, str | None] | None = None,
                 model_info: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Evaluate ``predictor`` on a bag; writes the run folder and returns (report.md path, metrics summary).

    topics: optional {"image": ..., "camera_info": ..., "lidar": ...} overriding auto-detection.
    Raises BagError / EvaluationError with a message meant for the user.
    """
    with ExitStack() as stack:
        reader = open_bag(bag_path)
        stack.callback(reader.close)
        info, frames = decoded_frames(reader, options.node_config, options.max_frames, topics)
        output = stack.enter_context(BagWriter(options.output_bag, "mcap", overwrite=True)) \
            if options.output_bag else None  # written atomically: a failed run leaves no partial bag
        for topic, msgtype in OUTPUT_TOPICS.items() if output is not None else ():
            output.add_topic(topic, msgtype)
        example_indices = set(np.linspace(0, info.total - 1, min(options.n_examples, info.total)).round().astype(int))
        evaluation = BagEvaluation(predictor, output_kind, options, output)
        with tqdm(total=info.total, desc="evaluating", unit="frame", disable=not options.progress) as progress:
            for item, inputs, decode_ms in frames:
                progress.update(1)
                if inputs is None:
                    evaluation.skip(item.index, item.stamp_ns, item.reason)
                    continue
                record = evaluation.process(item, inputs, item.index in example_indices)
                record.timings_ms = {"decode": decode_ms, **record.timings_ms}
                evaluation.records.append(record)
    return _finish(bag_path, run_dir, evaluation, info.selection, options, model_info or {})


def reproduce_node_depth(bag_path: Path, predictor: DepthPredictor, output_kind: str,
                         options: EvaluationOptions = EvaluationOptions(),
                         topics: dict[str, str | None] | None = None,
                         only_stamps: set[int] | None = None) -> list[tuple[int, AlignedDepth]]:
    """What the node publishes for each paired frame of the bag — the whole scan, no held-out split, no scoring:
    (image stamp ns, the aligner's result). For checking a live run against the offline path.

    only_stamps: the image stamps a live node answered; the others are left out, so the temporal filter
    sees the same sequence of frames as the live node did (a live node may drop frames under load)."""
    reader = open_bag(bag_path)
    node = NodePath(predictor, output_kind, options.node_config)
    outputs = []
    try:
        _, frames = decoded_frames(reader, options.node_config, options.max_frames, topics)
        for item, inputs, _ in frames:
            if inputs is not None and (only_stamps is None or item.stamp_ns in only_stamps):
                outputs.append((item.stamp_ns, node.process(inputs, inputs.xyz, item.stamp_ns).aligned))
    finally:
        reader.close()
    return outputs


def _finish(bag_path: Path, run_dir: Path, evaluation: BagEvaluation, selection: TopicSelection,
            options: EvaluationOptions, model_info: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    records = evaluation.records
    if not records:
        raise EvaluationError(f"no image in {bag_path} could be read")
    if not any(r.scored for r in records):
        reasons = sorted({r.reason for r in records})
        raise EvaluationError("no frame could be scored: " + "; ".join(reasons))
    holdout, config = options.holdout, options.node_config
    description = f"{holdout.fraction:.0%} of points at random (seed {holdout.seed})" + (
        f" + every {holdout.every_kth_beam}th beam" if holdout.every_kth_beam else "")
    context = {
        "bag": str(bag_path),
        "topics": dataclasses.asdict(selection),
        "model": {"preset": "?", "random_weights": False, **model_info, "output_kind": evaluation.output_kind},
        "holdout": {**dataclasses.asdict(holdout), "description": description},
        "alignment": {"method": config.lidar_fit_method, "max_lidar_dt_s": config.lidar_max_dt,
                      "extrinsic": "bag TF" if config.lidar_extrinsic() is None else "parameter"},
        "scoring_range_m": [options.min_depth, options.max_depth],
    }
    summary = summarise(records, context)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("example_*.png"):  # a re-used run folder must not show another run's panels
        stale.unlink()
    example_files = []
    records_by_index = {r.index: r for r in records}
    for index, (rgb, depth) in sorted(evaluation.examples.items()):
        record = records_by_index[index]
        relative_error = record.predictions["node"] / record.held_out.depth - 1.0
        abs_rel = (record.scores["node"].metrics or {}).get("abs_rel", math.nan)
        name = f"example_{index:04d}.png"
        plot_example(rgb, depth, record.held_out.row, record.held_out.col, relative_error,
                     f"frame {index}: AbsRel {abs_rel:.3f} on {record.n_held_out} held-out points", run_dir / name)
        example_files.append(name)
    return write_run_folder(run_dir, records, summary, example_files), summary


def one_line_summary(summary: dict[str, Any]) -> str:
    """e.g. 'AbsRel 0.052 (least squares 0.081, median 0.210, LiDAR only 0.064) on 3120 held-out points, 20/20'."""
    methods = summary["methods"]

    def abs_rel(method: str) -> str:
        metrics = methods[method]["metrics"]
        return f"{metrics['abs_rel']:.3f}" if metrics else "n/a"

    frames = summary["frames"]
    if not methods["node"]["points_scored"]:
        fits = summary["alignment_fits"]
        reason = fits["failed_example"][max(fits["failed"], key=fits["failed"].get)] if fits["failed"] else "no fit"
        return (f"the node gave no metric depth (alignment refused the prediction: {reason}); baselines on the same "
                f"held-out points: median scaling AbsRel {abs_rel('median_scaling')}, LiDAR only "
                f"{abs_rel('lidar_only')}; {frames['scored']}/{frames['total']} frames")
    return (f"held-out AbsRel {abs_rel('node')} (plain least squares {abs_rel('least_squares')}, median scaling "
            f"{abs_rel('median_scaling')}, LiDAR only {abs_rel('lidar_only')}) on {methods['node']['points_scored']} "
            f"points, {frames['scored']}/{frames['total']} frames scored")


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def build_engine(config: DepthNodeConfig) -> tuple[Any, dict[str, Any]]:
    """The node's inference engine for its configuration (same weights look-up, device and precision rules);
    raises WeightsError when weights are missing and random weights are not allowed."""
    from dpt_ros.app.depth_setup import build_depth_pipeline

    _, engine = build_depth_pipeline(config)
    info = {"preset": engine.preset.name, "random_weights": engine.random_weights,
            "weights": None if engine.random_weights else config.weights or "models/" + engine.preset.weights_file,
            "reduced_architecture": bool(config.architecture_overrides), "device": str(engine.device),
            "precision": config.precision}
    return engine, info


def read_node_parameters(path: Path) -> dict[str, Any]:
    """The ros__parameters of a node parameters YAML (the '/**' section, or the only / the depth node's one)."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read parameters file {path}: {error}") from None
    sections = {name: body.get("ros__parameters", {}) for name, body in document.items() if isinstance(body, dict)}
    for name in ("/**", "dpt_ros", "/dpt_ros", "depth_node"):
        if name in sections:
            return dict(sections[name])
    if len(sections) == 1:
        return dict(next(iter(sections.values())))
    raise ValueError(f"{path} has no '/**:' ros__parameters section (sections: {', '.join(sections) or 'none'})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpt-ros-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3) or ROS 1 .bag file")
    parser.add_argument("--run-dir", type=Path, help="output folder (default runs/eval-<bag name>-<time>)")
    node = parser.add_argument_group("the node's configuration (its parameters file; the options below override it)")
    node.add_argument("--params-file", type=Path, help="the depth node's parameters YAML, e.g. config/depth.yaml")
    node.add_argument("--model", help="depth preset (parameter model)")
    node.add_argument("--weights", help="weights file (default models/<the preset's file>)")
    node.add_argument("--allow-random-weights", action="store_true", default=None, help="run without weights")
    node.add_argument("--architecture-overrides", metavar="JSON", help="shrink the preset (random weights only)")
    node.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    node.add_argument("--precision", choices=("fp32", "fp16", "bf16"))
    node.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="network input size")
    node.add_argument("--alignment-method", choices=("robust", "lstsq"), help="parameter lidar_fit_method")
    node.add_argument("--max-lidar-dt", type=float, help="parameter lidar_max_dt (seconds)")
    node.add_argument("--extrinsic", metavar="VALUES",
                      help="LiDAR→camera optical: 'x y z qx qy qz qw' or 16 row-major values (default: the bag's TF)")
    topics = parser.add_argument_group("topics (auto-detected by type when unambiguous)")
    topics.add_argument("--image-topic")
    topics.add_argument("--camera-info-topic")
    topics.add_argument("--lidar-topic")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--holdout-fraction", type=float, default=0.2)
    scoring.add_argument("--holdout-every-kth-beam", type=int, default=0, metavar="K")
    scoring.add_argument("--seed", type=int, default=0)
    scoring.add_argument("--min-depth", type=float, default=1e-3)
    scoring.add_argument("--max-depth", type=float, default=80.0)
    scoring.add_argument("--max-frames", type=int)
    scoring.add_argument("--examples", type=int, default=3, help="example panels to draw")
    parser.add_argument("--output-bag", type=Path, help="also write the depth as an mcap bag for RViz/Foxglove")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def node_config_from_args(args: argparse.Namespace) -> DepthNodeConfig:
    """The node's parameters file (if any) with the command-line overrides, LiDAR alignment on."""
    parameters = read_node_parameters(args.params_file) if args.params_file else {}
    overrides = {"model": args.model, "weights": args.weights, "allow_random_weights": args.allow_random_weights,
                 "architecture_overrides": args.architecture_overrides, "device": args.device,
                 "precision": args.precision, "input_size": tuple(args.input_size) if args.input_size else None,
                 "lidar_fit_method": args.alignment_method, "lidar_max_dt": args.max_lidar_dt,
                 "lidar_to_camera": tuple(float(v) for v in args.extrinsic.replace(",", " ").split())
                 if args.extrinsic else None}
    parameters.update({name: value for name, value in overrides.items() if value is not None})
    parameters["lidar_alignment"] = True
    return DepthNodeConfig.from_mapping(parameters)


def main(argv: list[str] | None = None) -> int:
    from dpt_ros.model.checkpoint import WeightsError

    args = _parser().parse_args(argv)
    try:
        holdout = HoldoutConfig(args.holdout_fraction, args.holdout_every_kth_beam, args.seed)
        options = EvaluationOptions(
            holdout=holdout, node_config=node_config_from_args(args), min_depth=args.min_depth,
            max_depth=args.max_depth, max_frames=args.max_frames, n_examples=args.examples,
            output_bag=args.output_bag, progress=not args.no_progress)
        topics = {"image": args.image_topic, "camera_info": args.camera_info_topic, "lidar": args.lidar_topic}
        reader = open_bag(args.bag)  # check the bag before spending seconds on loading a model
        try:
            select_topics(bag_topics(reader), **topics)
        finally:
            reader.close()
        engine, model_info = build_engine(options.node_config)
        run_dir = args.run_dir or Path("runs") / f"eval-{args.bag.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        report, summary = evaluate_bag(args.bag, engine, engine.preset.output_kind, run_dir, options, topics,
                                       model_info)
    except (BagError, EvaluationError, WeightsError, ValueError) as error:
        print(f"dpt-ros-eval: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"report: {report}")
    print(one_line_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
