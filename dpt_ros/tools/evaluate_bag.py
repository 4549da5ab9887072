"""`dpt-ros-eval BAG`: score the depth node's core path on a recorded bag or a KITTI raw drive.

No ROS runtime needed (rosbags + the ROS-free core). Each frame runs exactly what the node runs — the node's
configuration (`DepthNodeConfig`, from its parameters file and options), its `DepthPipeline` with the same
inference engine and LiDAR-aligned depth stage (projection, robust scale/shift fit, temporal filter, metres) —
but the stage only sees the *fitting* part of each scan; the *held-out* part scores the result. With dense
ground truth (a depth topic, KITTI's annotated depth) every ground-truth pixel is scored too. Baselines
(plain least squares, median scaling, a metric preset as published, LiDAR-only nearest neighbour and IP-Basic)
are scored on exactly the same pixels; the methods are a registry (`dpt_ros.eval.methods`). Optionally the
fitting scan is thinned to fewer beams (`--beams`) and several models are compared (`--model a --model b`).

Writes metrics.json, per_frame.csv, PNG plots and report.md into the run folder (and optionally a bag with
the depth for RViz / Foxglove). Problems with the input end with one clear message and exit status 2; a
recording cut short is evaluated as far as it can be read, with a warning.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from dpt_ros.alignment.lidar_depth import AlignedDepth, LidarScan
from dpt_ros.app.depth_setup import depth_stage
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.bags.frames import BagFrames, FrameInputs, PairedFrame, TopicSelection, decoded_frames, select_topics
from dpt_ros.bags.kitti_raw import is_kitti_drive, kitti_frames
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
from dpt_ros.eval.depth_metrics import CropName, EvalConfig
from dpt_ros.eval.ground_truth import ground_truth_pixels, score_dense
from dpt_ros.eval.holdout import (
    HoldoutConfig,
    PixelSamples,
    drop_shared_pixels,
    holdout_mask,
    score_points,
    static_pixel_flicker,
)
from dpt_ros.eval.methods import DEFAULT_METHODS, DepthMethod, MethodInputs
from dpt_ros.geometry.lidar_projection import keep_nearest_per_pixel, project_into_camera, project_lidar
from dpt_ros.geometry.pointcloud import PackedCloud
from dpt_ros.geometry.rings import beam_stride, keep_every_kth_ring, recover_rings
from dpt_ros.model.presets import PRESETS, resolve_weights_path
from dpt_ros.pipeline.depth import DepthEstimate, DepthPipeline, Frame, LidarFrameInput
from dpt_ros.pipeline.prompt_stage import PromptedDepth
from dpt_ros.prompt.sources import DepthPrompt, prompt_from_lidar
from dpt_ros.tools import cli
from dpt_ros.tools.evaluation_report import (
    FrameRecord,
    Variant,
    beam_sweep,
    headline,
    model_comparison,
    plot_example,
    summarise,
    write_run_folder,
)


class DepthPredictor(Protocol):
    """What the evaluator needs of a model: dpt_ros.InferenceEngine or any stand-in (tests inject exact ones).

    infer: (H, W, 3) uint8 RGB -> (H, W) float32 at the image's resolution, in ``output_kind`` units.
    Prompt models (``ModelUnderTest.needs_prompt``) are also called as infer_batch([rgb], prompts=[(h, w)
    metres or None]) (see ``dpt_ros.pipeline.depth.PromptInferenceBackend``).
    """

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelUnderTest:
    """One model of a run: name (its preset, for tables), the predictor, what it outputs, and model_info for
    the report (preset, random_weights, weights, ...). needs_prompt: a prompt model (Prompt Depth Anything),
    run with the fitting LiDAR points as its prompt instead of aligned to them."""

    name: str
    predictor: DepthPredictor
    output_kind: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    needs_prompt: bool = False


def _node_defaults() -> DepthNodeConfig:
    return DepthNodeConfig(lidar_alignment=True)


@dataclass(frozen=True)
class EvaluationOptions:
    """node_config: the depth node's settings (lidar_* for pairing, extrinsic and alignment; intrinsics_source).
    Its lidar_to_camera, when set, overrides the bag's TF, as in the node.

    beams: the LiDAR density sweep, beam counts the fitting scan is thinned to (every k-th ring); empty = the
    scan as recorded. lidar_beams: the LiDAR's beam count (default: the ring field's, or the source's).
    crop: the KITTI crop applied when scoring against dense ground truth. methods: what is compared.
    ground_truth: a KITTI drive's annotated-depth folder when it is not inside the drive.
    """

    holdout: HoldoutConfig = HoldoutConfig()
    node_config: DepthNodeConfig = dataclasses.field(default_factory=_node_defaults)
    min_depth: float = 1e-3  # metres, scoring range (KITTI protocol)
    max_depth: float = 80.0
    max_frames: int | None = None
    n_examples: int = 3
    output_bag: Path | None = None
    progress: bool = True
    beams: tuple[int, ...] = ()
    lidar_beams: int | None = None
    crop: CropName = "none"
    methods: tuple[DepthMethod, ...] = DEFAULT_METHODS
    ground_truth: Path | None = None


class EvaluationError(RuntimeError):
    """The evaluation cannot go on (no transform, nothing scored...); the message says what to do."""


def _pixel_samples_of_sparse(sparse: np.ndarray) -> PixelSamples:
    rows, cols = np.nonzero(np.isfinite(sparse))
    return PixelSamples(rows, cols, sparse[rows, cols].astype(np.float64))


class _SharedPrediction:
    """One model's inference, computed once per image and shared by the runs of every beam count."""

    def __init__(self, predictor: DepthPredictor) -> None:
        self.predictor = predictor
        self._image: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.inference_ms = math.nan  # what computing ``last`` took

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        if rgb is not self._image:
            start = time.perf_counter()
            prediction = np.asarray(self.predictor.infer(rgb), dtype=np.float32)
            self.inference_ms = (time.perf_counter() - start) * 1e3
            if prediction.shape != rgb.shape[:2]:
                raise EvaluationError(f"the model returned {prediction.shape} for a {rgb.shape[:2]} image")
            self._image, self.last = rgb, prediction
        return self.last

    def infer_batch(self, images: list[np.ndarray], prompts: list[np.ndarray | None] | None = None,
                    ) -> list[np.ndarray]:
        """Prompted frames: the prediction depends on the prompt (one per beam count), so nothing is shared."""
        if prompts is None:
            return [self.infer(image) for image in images]
        start = time.perf_counter()
        predictions = [np.asarray(p, dtype=np.float32) for p in self.predictor.infer_batch(images, prompts=prompts)]
        self.inference_ms = (time.perf_counter() - start) * 1e3
        if any(p.shape != image.shape[:2] for p, image in zip(predictions, images)):
            raise EvaluationError(f"the model returned {predictions[0].shape} for a {images[0].shape[:2]} image")
        self._image, self.last = None, predictions[-1]
        return predictions


@dataclass(frozen=True)
class NodeFrame:
    prediction: np.ndarray  # (H, W) raw network output
    depth: DepthEstimate  # what the node publishes: metres on 'depth' or relative on 'depth/relative'
    aligned: AlignedDepth | None  # the LiDAR stage's result (fit, filter state, sparse depth); None for prompts
    timings_ms: dict[str, float]
    cloud: PackedCloud | None  # the node's point cloud (metric frames, when wanted)
    sparse_depth: np.ndarray | None = None  # (H, W) metres of the fitting points (NaN = none), None without scan
    prompt: DepthPrompt | None = None  # a prompt model's prompt (or why it had none)


class NodePath:
    """The node's per-frame processing: its DepthPipeline with the depth stage it builds for this config.

    A prompt model (needs_prompt) runs as the node runs it with prompt_source lidar: the fitting points become
    its prompt (`prompt_from_lidar`), and its metres are published only when that prompt is usable.
    """

    def __init__(self, predictor: DepthPredictor, output_kind: str, config: DepthNodeConfig,
                 needs_prompt: bool = False) -> None:
        # scored at the image's resolution (output_scale 1); LiDAR alignment on, or the LiDAR as the prompt
        self.config = config.with_changes({"lidar_alignment": not needs_prompt, "output_scale": 1.0})
        self.needs_prompt = needs_prompt
        self.shared = predictor if isinstance(predictor, _SharedPrediction) else _SharedPrediction(predictor)
        stage = PromptedDepth() if needs_prompt else depth_stage(self.config, output_kind)
        self.pipeline = DepthPipeline(self.shared, stage)

    def process(self, inputs: FrameInputs, fitting_xyz: np.ndarray, stamp_ns: int, want_cloud: bool = False,
                ) -> NodeFrame:
        """One frame aligned to (or prompted by) ``fitting_xyz`` (the node's point cloud too, if wanted and
        metric)."""
        stamp = stamp_ns / 1e9
        scan = LidarScan(fitting_xyz, inputs.T_cam_lidar, stamp, inputs.extrinsic_source)
        prompt_ms: dict[str, float] = {}
        if self.needs_prompt:
            start = time.perf_counter()
            prompt = prompt_from_lidar(scan, inputs.lens, self.config.prompt_settings())
            prompt_ms["prompt"] = (time.perf_counter() - start) * 1e3
            frame = Frame(inputs.rgb, inputs.intrinsics, prompt=prompt)
        else:
            frame = Frame(inputs.rgb, inputs.intrinsics, LidarFrameInput(stamp, inputs.lens, scan))
        outputs = self.pipeline.process(frame, self.config.output_options(), want_cloud=want_cloud)
        # a shared prediction's real cost; a prompt model's prompt building (projection + densification) too
        timings = {**outputs.timings_ms, "inference": self.shared.inference_ms, **prompt_ms}
        if outputs.alignment is not None:
            sparse = outputs.alignment.sparse_depth
        else:  # the same z-buffered projection of the fitting points the aligner makes
            lens, config = inputs.lens, self.config
            sparse = project_lidar(fitting_xyz, inputs.T_cam_lidar, lens.K, lens.image_size, lens.D,
                                   lens.distortion_model, config.lidar_min_range, config.lidar_max_range)
        return NodeFrame(self.shared.last, outputs.depth, outputs.alignment, timings, outputs.cloud, sparse,
                         outputs.prompt)


def _record_alignment(record: FrameRecord, node_frame: NodeFrame) -> None:
    """The published (filtered) s, t and filter state, and this frame's own fit or why it failed; for a prompt
    model, whether its prompt was usable ("prompt") or why not (counted as a failed fit)."""
    if node_frame.aligned is None:
        prompt = node_frame.prompt
        record.filter_state = "prompt" if prompt is not None and prompt.usable else "none"
        record.fit_reason = "" if prompt is not None and prompt.usable else (prompt.reason if prompt else "no prompt")
        return
    aligned = node_frame.aligned
    filtered, fit = aligned.filtered, aligned.fit
    if filtered is not None:
        record.filter_state = filtered.state.value
        record.scale, record.shift = (filtered.scale, filtered.shift) if filtered.usable else (math.nan, math.nan)
    if fit is not None and fit.success:
        record.fit_scale, record.fit_shift, record.fit_inlier_ratio = fit.scale, fit.shift, fit.inlier_ratio
    else:
        record.fit_reason = fit.reason if fit is not None else (aligned.note or "no fit")


class BagEvaluation:
    """One variant's run: feed it the frames in order (the aligner's temporal filter is stateful)."""

    def __init__(self, model: ModelUnderTest, options: EvaluationOptions, output: BagWriter | None = None,
                 shared: _SharedPrediction | None = None) -> None:
        self.output_kind, self.options = model.output_kind, options
        self.node = NodePath(shared or model.predictor, model.output_kind, options.node_config, model.needs_prompt)
        self.records: list[FrameRecord] = []
        # index -> rgb, the node's depth, ground truth
        self.examples: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # rgb, depth of the last scored frame
        self.output = output

    def process(self, pair: PairedFrame, inputs: FrameInputs, held_mask: np.ndarray, fitting_mask: np.ndarray,
                example: bool) -> FrameRecord:
        """Run the node's path on the fitting points, score the held-out ones and the ground truth."""
        record = FrameRecord(pair.index, pair.stamp_ns, n_lidar=len(inputs.xyz),
                             lidar_offset_ms=pair.lidar_offset_ns / 1e6)
        node_frame = self.node.process(inputs, inputs.xyz[fitting_mask], pair.stamp_ns, self.output is not None)
        node_depth = node_frame.depth.values if node_frame.depth.is_metric else None
        record.timings_ms.update(node_frame.timings_ms)
        start = time.perf_counter()
        self._score(record, inputs, inputs.xyz[held_mask], node_frame, node_depth)
        record.timings_ms["scoring"] = (time.perf_counter() - start) * 1e3
        _record_alignment(record, node_frame)
        if node_depth is not None:
            if self._previous is not None:
                record.flicker = static_pixel_flicker(self._previous[0], inputs.rgb, self._previous[1], node_depth)
            self._previous = (inputs.rgb, node_depth)
        if example:
            self.examples[pair.index] = (inputs.rgb, node_depth, inputs.ground_truth)
        if self.output is not None and node_depth is not None:
            _write_outputs(self.output, pair.stamp_ns, inputs, node_depth, node_frame.cloud)
        return record

    def _score(self, record: FrameRecord, inputs: FrameInputs, held_xyz: np.ndarray, node_frame: NodeFrame,
               node_depth: np.ndarray | None) -> None:
        """Every method's metres at the held-out pixels that no fitting point touches and at the ground-truth
        pixels, and their scores."""
        lens, config, options = inputs.lens, self.node.config, self.options
        width, height = lens.image_size
        sparse = node_frame.sparse_depth  # what the node's fit (or prompt) saw
        if sparse is None:
            sparse = np.full((height, width), np.nan, np.float32)
        prompt = node_frame.prompt
        # a prompt model's prediction is metres only when its prompt was used, else unitless (RELATIVE_DEPTH)
        kind = self.output_kind if prompt is None else node_frame.depth.kind
        method_inputs = MethodInputs(inputs.rgb, lens.K, node_frame.prediction, kind, node_depth, sparse,
                                     config.lidar_max_depth, None if prompt is None else prompt.depth)
        dense = {method.key: method.dense(method_inputs) for method in options.methods}
        dense = {key: values for key, values in dense.items() if values is not None}
        fitting = _pixel_samples_of_sparse(sparse)
        record.n_fitting = len(fitting)
        if len(held_xyz):
            projected = keep_nearest_per_pixel(project_into_camera(
                held_xyz, inputs.T_cam_lidar, lens, config.lidar_min_range, config.lidar_max_range), lens.image_size)
            held = drop_shared_pixels(PixelSamples(projected.row, projected.col,
                                                   projected.depth.astype(np.float64)), fitting, width)
            record.predictions = {key: held.values_of(values) for key, values in dense.items()}
            record.scores = {key: score_points(values, held.depth, options.min_depth, options.max_depth)
                             for key, values in record.predictions.items()}
            record.held_out, record.n_held_out = held, len(held)
        if inputs.ground_truth is not None:
            protocol = EvalConfig(options.min_depth, options.max_depth, options.crop)
            index, truth = ground_truth_pixels(inputs.ground_truth, protocol)
            record.n_ground_truth = len(index)
            for key, values in dense.items():
                record.gt_scores[key], record.gt_by_range[key] = score_dense(values, index, truth, protocol)

    def skip(self, index: int, stamp_ns: int, reason: str) -> None:
        self.records.append(FrameRecord(index, stamp_ns, reason=reason))


OUTPUT_TOPICS = {"/eval/depth": IMAGE, "/eval/camera_info": CAMERA_INFO, "/eval/points": POINT_CLOUD}


def _write_outputs(bag: BagWriter, stamp: int, inputs: FrameInputs, depth: np.ndarray,
                   cloud: PackedCloud | None) -> None:
    """The node's metric depth (32FC1), its camera_info and point cloud, stamped and framed like the image."""
    frame_id = inputs.frame_id
    bag.write("/eval/depth", stamp, make_image(depth, "32FC1", stamp, frame_id))
    bag.write("/eval/camera_info", stamp, make_camera_info(inputs.lens.K, depth.shape[1], depth.shape[0], stamp,
                                                           frame_id))
    if cloud is not None:
        bag.write("/eval/points", stamp, make_packed_cloud(cloud, stamp, frame_id))


def open_source(path: Path, options: EvaluationOptions, topics: dict[str, str | None] | None = None,
                ) -> tuple[BagFrames, Iterator[Any], Callable[[], None]]:
    """A bag or a KITTI raw drive folder as (info, frames as ``decoded_frames`` yields them, close)."""
    if path.is_dir() and is_kitti_drive(path):
        if topics and topics.get("ground_truth"):
            raise EvaluationError("--gt-topic is for bags; a KITTI drive's ground truth is a folder (--gt-dir)")
        info, frames = kitti_frames(path, options.max_frames, options.ground_truth)
        return info, frames, lambda: None
    if options.ground_truth is not None:
        raise EvaluationError("--gt-dir is for KITTI drives; a bag's ground truth is a topic (--gt-topic)")
    reader = open_bag(path)
    try:
        info, frames = decoded_frames(reader, options.node_config, options.max_frames, topics)
    except BaseException:
        reader.close()
        raise
    return info, frames, reader.close


class _Rings:
    """Each frame's ring per point (for the density sweep and whole-beam hold-out): the cloud's ring field,
    else recovered from the points (``dpt_ros.geometry.rings``); records how and the beam counts seen."""

    def __init__(self, options: EvaluationOptions) -> None:
        self.options = options
        self.how: set[str] = set()
        self.native: set[int] = set()

    def rings(self, inputs: FrameInputs) -> tuple[np.ndarray, int]:
        """(N,) int64 ring per point and the LiDAR's beam count."""
        native = self.options.lidar_beams or inputs.n_beams
        if inputs.ring is not None:
            ring, how = np.asarray(inputs.ring).astype(np.int64), "the cloud's ring field"
            if native is None:
                native = int(ring.max()) + 1 if len(ring) else 1
        elif native is None:
            raise EvaluationError("the cloud has no ring field: give the LiDAR's beam count with --lidar-beams "
                                  "so that rings can be recovered")
        else:
            ring, how = recover_rings(inputs.xyz, native)
        self.how.add(how)
        self.native.add(int(native))
        return ring, int(native)

    @staticmethod
    def keep_masks(ring: np.ndarray, native: int, beams: list[int | None]) -> list[np.ndarray]:
        """(N,) bool per beam setting: the points on the kept rings (None keeps all)."""
        try:
            return [np.ones(len(ring), bool) if n is None else keep_every_kth_ring(ring, beam_stride(native, n))
                    for n in beams]
        except ValueError as error:
            raise EvaluationError(str(error)) from None


def evaluate_models(source: Path, models: list[ModelUnderTest], run_dir: Path,
                    options: EvaluationOptions = EvaluationOptions(), topics: dict[str, str | None] | None = None,
                    ) -> tuple[Path, dict[str, Any]]:
    """Evaluate ``models`` on a bag or KITTI drive at every beam count of ``options.beams``, all on the same
    frames and points; writes the run folder and returns (report.md path, metrics summary).

    topics: optional {"image", "camera_info", "lidar", "ground_truth"} overriding auto-detection.
    Raises BagError / EvaluationError with a message meant for the user.
    """
    if len({model.name for model in models}) != len(models):
        raise EvaluationError("each --model may be given once")
    beams: list[int | None] = list(options.beams) or [None]
    with ExitStack() as stack:
        info, frames, close = open_source(source, options, topics)
        stack.callback(close)
        holdout = options.holdout
        if info.selection.ground_truth is None and holdout.fraction == 0.0 and not holdout.every_kth_beam:
            raise EvaluationError("nothing to score: hold out LiDAR points (--holdout-fraction > 0) or give "
                                  "dense ground truth (--gt-topic, or a KITTI drive with proj_depth/groundtruth)")
        output = stack.enter_context(BagWriter(options.output_bag, "mcap", overwrite=True)) \
            if options.output_bag else None  # written atomically: a failed run leaves no partial bag
        for topic, msgtype in OUTPUT_TOPICS.items() if output is not None else ():
            output.add_topic(topic, msgtype)
        example_indices = set(np.linspace(0, info.total - 1, min(options.n_examples, info.total)).round().astype(int))
        evaluations: dict[Variant, BagEvaluation] = {}
        for model in models:
            shared = _SharedPrediction(model.predictor)
            for n in beams:
                first = not evaluations
                evaluations[Variant(model.name, n)] = BagEvaluation(model, options, output if first else None,
                                                                    shared)
        rings = _Rings(options)
        with tqdm(total=info.total, desc="evaluating", unit="frame", disable=not options.progress) as progress:
            for item, inputs, decode_ms in frames:
                progress.update(1)
                if inputs is None:
                    for evaluation in evaluations.values():
                        evaluation.skip(item.index, item.stamp_ns, item.reason)
                    continue
                ring, native = (rings.rings(inputs) if beams != [None] or holdout.every_kth_beam
                                else (None, 0))
                held_mask = holdout_mask(len(inputs.xyz), holdout, item.index, ring)
                keep = dict(zip(beams, rings.keep_masks(ring, native, beams))) if ring is not None \
                    else {None: np.ones(len(inputs.xyz), bool)}
                for variant, evaluation in evaluations.items():
                    record = evaluation.process(item, inputs, held_mask, ~held_mask & keep[variant.beams],
                                                item.index in example_indices)
                    record.timings_ms = {"decode": decode_ms, **record.timings_ms}
                    evaluation.records.append(record)
    return _finish(source, run_dir, evaluations, models, info.selection, options, rings, info.warning)


def evaluate_bag(bag_path: Path, predictor: DepthPredictor, output_kind: str, run_dir: Path,
                 options: EvaluationOptions = EvaluationOptions(), topics: dict[str, str | None] | None = None,
                 model_info: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """One model on a bag or KITTI drive (``evaluate_models`` with one model)."""
    info = model_info or {}
    model = ModelUnderTest(str(info.get("preset", "model")), predictor, output_kind, info)
    return evaluate_models(bag_path, [model], run_dir, options, topics)


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


def _finish(source: Path, run_dir: Path, evaluations: dict[Variant, BagEvaluation], models: list[ModelUnderTest],
            selection: TopicSelection, options: EvaluationOptions, rings: _Rings, warning: str | None,
            ) -> tuple[Path, dict[str, Any]]:
    primary_variant, evaluation = next(iter(evaluations.items()))
    records = evaluation.records
    if not records:
        raise EvaluationError(f"no image in {source} could be read")
    if not any(r.scored for r in records):
        reasons = sorted({r.reason for r in records})
        raise EvaluationError("no frame could be scored: " + "; ".join(reasons))
    holdout, config = options.holdout, options.node_config
    description = (f"{holdout.fraction:.0%} of points at random (seed {holdout.seed})" + (
        f" + every {holdout.every_kth_beam}th beam" if holdout.every_kth_beam else "")) \
        if holdout.fraction or holdout.every_kth_beam else "none (scored against dense ground truth only)"
    primary = models[0]
    context = {
        "bag": str(source),
        "topics": dataclasses.asdict(selection),
        "model": {"preset": primary.name, "random_weights": False, **primary.info,
                  "output_kind": primary.output_kind},
        "holdout": {**dataclasses.asdict(holdout), "description": description},
        "alignment": {"method": config.lidar_fit_method, "max_lidar_dt_s": config.lidar_max_dt,
                      "extrinsic": "bag TF" if config.lidar_extrinsic() is None else "parameter"},
        "scoring_range_m": [options.min_depth, options.max_depth],
        "ground_truth": {"source": selection.ground_truth, "crop": options.crop},
        "method_labels": {method.key: method.label for method in options.methods},
        "lidar": {"beams": sorted(rings.native), "rings_from": sorted(rings.how)},
        "recording_warning": warning,
    }
    summary = summarise(records, context)
    variants = [(variant, summarise(e.records, context)) for variant, e in evaluations.items()]
    summary["sweep"] = beam_sweep(variants, primary.name, options.methods)
    summary["models"] = model_comparison(variants, models, options.methods)
    summary["headline"] = headline(summary)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("example_*.png"):  # a re-used run folder must not show another run's panels
        stale.unlink()
    example_files = []
    records_by_index = {r.index: r for r in records}
    for index, (rgb, depth, truth) in sorted(evaluation.examples.items()):
        record = records_by_index[index]
        if record.held_out is not None or truth is None:  # error at the held-out LiDAR points
            held = record.held_out or PixelSamples(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
            rows, cols, reference, scores = held.row, held.col, held.depth, record.scores.get("node")
            where = "held-out LiDAR points"
        else:  # error at (every 4th, for legibility) ground-truth pixel
            rows, cols = (axis[::4] for axis in np.nonzero(np.isfinite(truth)))
            reference, scores, where = truth[rows, cols], record.gt_scores.get("node"), "ground-truth pixels"
        with np.errstate(invalid="ignore"):
            relative_error = (depth[rows, cols] / reference - 1.0 if depth is not None
                              else np.full(len(rows), np.nan))
        abs_rel = ((scores.metrics if scores else None) or {}).get("abs_rel", math.nan)
        name = f"example_{index:04d}.png"
        plot_example(rgb, depth, rows, cols, relative_error,
                     f"frame {index}: AbsRel {abs_rel:.3f} on {where} ({primary_variant.label})", run_dir / name,
                     where)
        example_files.append(name)
    return write_run_folder(run_dir, records, summary, example_files), summary


def one_line_summary(summary: dict[str, Any]) -> str:
    """e.g. 'AbsRel 0.052 (least squares 0.081, median 0.210, LiDAR only 0.064) on 3120 held-out points, 20/20'."""
    methods = summary["methods"]
    on_truth = summary["ground_truth"]["frames"] > 0
    where = "ground-truth" if on_truth else "held-out"

    def abs_rel(method: str) -> str:
        data = methods.get(method)
        metrics = data and (data["ground_truth"]["metrics"] if on_truth else data["metrics"])
        return f"{metrics['abs_rel']:.3f}" if metrics else "n/a"

    frames = summary["frames"]
    scored = methods["node"]["ground_truth"]["pixels_scored"] if on_truth else methods["node"]["points_scored"]
    if not scored:
        fits = summary["alignment_fits"]
        reason = fits["failed_example"][max(fits["failed"], key=fits["failed"].get)] if fits["failed"] else "no fit"
        return (f"the node gave no metric depth (alignment refused the prediction: {reason}); baselines on the same "
                f"{where} pixels: median scaling AbsRel {abs_rel('median_scaling')}, LiDAR only "
                f"{abs_rel('lidar_only')}; {frames['scored']}/{frames['total']} frames")
    return (f"{where} AbsRel {abs_rel('node')} (plain least squares {abs_rel('least_squares')}, median scaling "
            f"{abs_rel('median_scaling')}, LiDAR only {abs_rel('lidar_only')}) on {scored} "
            f"{'pixels' if on_truth else 'points'}, {frames['scored']}/{frames['total']} frames scored")


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def build_engine(config: DepthNodeConfig, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """The node's inference engine for its configuration (same weights look-up, device and precision rules);
    raises WeightsError when weights are missing and random weights are not allowed. Random weights are drawn
    from torch's generator seeded with ``seed``, so two runs with one seed score the same network."""
    import torch

    from dpt_ros.app.depth_setup import build_depth_pipeline

    torch.manual_seed(seed)
    _, engine = build_depth_pipeline(config)
    info = {"preset": engine.preset.name, "random_weights": engine.random_weights,
            "weights": None if engine.random_weights else str(resolve_weights_path(config.weights, engine.preset)),
            "reduced_architecture": bool(config.architecture_overrides), "device": str(engine.device),
            "precision": config.precision, "seed": seed if engine.random_weights else None}
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


def _beam_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(value) for value in text.replace(" ", "").split(",") if value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--beams takes beam counts like 64,32,16,8, not {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--beams takes positive beam counts like 64,32,16,8, not {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog="dpt-ros-eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3), ROS 1 .bag file, or a KITTI "
                                               "raw drive folder (<date>/<date>_drive_NNNN_sync)")
    parser.add_argument("--run-dir", type=Path, help="output folder (default runs/eval-<bag name>-<time>)")
    node = parser.add_argument_group("the node's configuration (its parameters file; the options below override it)")
    node.add_argument("--params-file", type=Path, help="the depth node's parameters YAML, e.g. config/depth.yaml")
    node.add_argument("--model", action="append",
                      help="depth preset (parameter model); repeat to compare models on the same frames")
    node.add_argument("--weights", help="weights file (default models/<the preset's file>; one model only)")
    node.add_argument("--allow-random-weights", action="store_true", default=None, help="run without weights")
    node.add_argument("--architecture-overrides", metavar="JSON", help="shrink the preset (random weights only)")
    node.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    node.add_argument("--precision", choices=("fp32", "fp16", "bf16"))
    node.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), help="network input size")
    node.add_argument("--alignment-method", choices=("robust", "lstsq"), help="parameter lidar_fit_method")
    node.add_argument("--max-lidar-dt", type=float, help="parameter lidar_max_dt (seconds)")
    node.add_argument("--extrinsic", metavar="VALUES",
                      help="LiDAR→camera optical: 'x y z qx qy qz qw' or 16 row-major values (default: the bag's TF)")
    topics = parser.add_argument_group("topics (auto-detected by type when unambiguous; depth images are never "
                                       "taken for the camera)")
    topics.add_argument("--image-topic")
    topics.add_argument("--camera-info-topic")
    topics.add_argument("--lidar-topic")
    topics.add_argument("--gt-topic", help="dense ground-truth depth (Image 32FC1 metres or 16UC1 millimetres), "
                                           "paired with the image of the same header stamp")
    topics.add_argument("--gt-dir", type=Path, help="KITTI drive: its annotated depth (default: "
                                                     "<drive>/proj_depth/groundtruth/image_02 when present)")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--holdout-fraction", type=float, default=0.2,
                         help="LiDAR points held out and scored (0: score against ground truth only)")
    scoring.add_argument("--holdout-every-kth-beam", type=int, default=0, metavar="K")
    scoring.add_argument("--seed", type=int, default=0, help="seeds the held-out split and random weights")
    scoring.add_argument("--min-depth", type=float, default=1e-3)
    scoring.add_argument("--max-depth", type=float, default=80.0)
    scoring.add_argument("--crop", choices=("none", "garg", "eigen"), default="none",
                         help="KITTI crop for scoring against ground truth")
    scoring.add_argument("--beams", type=_beam_counts, default=(), metavar="N,N,...",
                         help="LiDAR density sweep, e.g. 64,32,16,8: keep every k-th ring of the fitting scan")
    scoring.add_argument("--lidar-beams", type=int, metavar="N",
                         help="the LiDAR's beam count when its cloud has no ring field (rings are then recovered)")
    scoring.add_argument("--max-frames", type=int)
    scoring.add_argument("--examples", type=int, default=3, help="example panels to draw")
    parser.add_argument("--output-bag", type=Path, help="also write the depth as an mcap bag for RViz/Foxglove")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def node_config_from_args(args: argparse.Namespace, model: str | None = None) -> DepthNodeConfig:
    """The node's parameters file (if any) with the command-line overrides (``model`` for --model), LiDAR
    alignment on (off for prompt presets)."""
    parameters = read_node_parameters(args.params_file) if args.params_file else {}
    overrides = {"model": model, "weights": args.weights, "allow_random_weights": args.allow_random_weights,
                 "architecture_overrides": args.architecture_overrides, "device": args.device,
                 "precision": args.precision, "input_size": tuple(args.input_size) if args.input_size else None,
                 "lidar_fit_method": args.alignment_method, "lidar_max_dt": args.max_lidar_dt,
                 "lidar_to_camera": tuple(float(v) for v in args.extrinsic.replace(",", " ").split())
                 if args.extrinsic else None}
    parameters.update({name: value for name, value in overrides.items() if value is not None})
    # LiDAR alignment on, except for a prompt preset, which takes the LiDAR as its prompt instead
    preset = PRESETS.get(parameters.get("model", DepthNodeConfig().model))
    parameters["lidar_alignment"] = not (preset is not None and preset.needs_prompt)
    return DepthNodeConfig.from_mapping(parameters)


def _check_source(path: Path, topics: dict[str, str | None]) -> None:
    """Fail on an unreadable bag or missing topics before spending seconds on loading models."""
    if path.is_dir() and is_kitti_drive(path):
        return
    reader = open_bag(path)
    try:
        select_topics(bag_topics(reader), **topics)
    finally:
        reader.close()


def main(argv: list[str] | None = None) -> int:
    from dpt_ros.model.checkpoint import WeightsError

    args = _parser().parse_args(argv)
    try:
        if args.weights and args.model and len(args.model) > 1:
            raise ValueError("--weights names one file: compare several models with their default weights files")
        holdout = HoldoutConfig(args.holdout_fraction, args.holdout_every_kth_beam, args.seed)
        config = node_config_from_args(args, args.model[0] if args.model else None)  # the first model's size rules
        options = EvaluationOptions(
            holdout=holdout, node_config=config, min_depth=args.min_depth,
            max_depth=args.max_depth, max_frames=args.max_frames, n_examples=args.examples,
            output_bag=args.output_bag, progress=not args.no_progress, beams=args.beams,
            lidar_beams=args.lidar_beams, crop=args.crop, ground_truth=args.gt_dir)
        topics = {"image": args.image_topic, "camera_info": args.camera_info_topic, "lidar": args.lidar_topic,
                  "ground_truth": args.gt_topic}
        _check_source(args.bag, topics)
        models = []
        for name in args.model or [config.model]:
            engine, model_info = build_engine(node_config_from_args(args, name), args.seed)
            models.append(ModelUnderTest(engine.preset.name, engine, engine.preset.output_kind, model_info,
                                         needs_prompt=engine.preset.needs_prompt))
        run_dir = args.run_dir or Path("runs") / f"eval-{args.bag.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        report, summary = evaluate_models(args.bag, models, run_dir, options, topics)
    except (BagError, EvaluationError, WeightsError, ValueError) as error:
        print(f"dpt-ros-eval: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if summary["recording_warning"]:
        print(f"dpt-ros-eval: warning: {summary['recording_warning']}", file=sys.stderr)
    print(f"report: {report}")
    print(summary["headline"])
    print(one_line_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
