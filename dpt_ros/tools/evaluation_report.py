"""Aggregating per-frame evaluation records into metrics.json, per_frame.csv, PNG plots and report.md.

All files are written atomically (temporary file + rename), so an interrupted run never leaves a half
report that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dpt_ros.eval.holdout import (
    RANGE_BINS,
    PixelSamples,
    PointScores,
    bin_label,
    consecutive_jitter,
    mean_metrics,
    score_by_range,
)
from dpt_ros.eval.methods import DepthMethod

HEADLINE_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1")


@dataclass
class FrameRecord:
    """What happened to one image: scored (with per-method scores) or skipped (with the reason)."""

    index: int
    stamp_ns: int
    reason: str = ""  # empty when scored
    n_lidar: int = 0  # points in the scan
    n_fitting: int = 0  # pixels given to the alignment
    n_held_out: int = 0  # held-out pixels scored (shared pixels removed)
    lidar_offset_ms: float = float("nan")
    scale: float = float("nan")
    shift: float = float("nan")
    filter_state: str = ""
    fit_scale: float = float("nan")  # this frame's own fit before temporal filtering
    fit_shift: float = float("nan")
    fit_inlier_ratio: float = float("nan")
    fit_reason: str = ""  # why this frame's own fit failed ("" when it succeeded)
    scores: dict[str, PointScores] = field(default_factory=dict)
    held_out: PixelSamples | None = None  # the scored pixels and their LiDAR depth (metres)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (M,) metres (NaN = none)
    n_ground_truth: int = 0  # ground-truth pixels in range and crop (0: no ground truth for this frame)
    gt_scores: dict[str, PointScores] = field(default_factory=dict)  # method -> scores on the ground truth
    gt_by_range: dict[str, dict[str, PointScores]] = field(default_factory=dict)  # method -> bin -> scores
    flicker: float | None = None  # vs. the previous scored frame when the view stood still
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return not self.reason


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?")


def reason_kind(reason: str) -> str:
    """A failure reason with its numbers blanked, so per-frame reasons group ('inlier ratio # < #')."""
    return _NUMBER.sub("#", reason)


def _json_safe(value: Any) -> Any:
    """NaN/inf → None and numpy scalars → Python numbers, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _ground_truth_summary(scored: list[FrameRecord], method: str) -> dict[str, Any]:
    """Mean over frames of one method's scores on dense ground truth (overall and per range bin)."""
    per_frame = [r.gt_scores[method] for r in scored if method in r.gt_scores]
    by_range = [r.gt_by_range[method] for r in scored if method in r.gt_by_range]
    labels = [bin_label(low, high) for low, high in RANGE_BINS]
    return {
        "metrics": mean_metrics([s.metrics for s in per_frame]),
        "frames_with_metrics": sum(s.metrics is not None for s in per_frame),
        "pixels_scored": int(sum(s.n_scored for s in per_frame)),
        "coverage": _finite_or_none(np.mean([s.coverage for s in per_frame])) if per_frame else None,
        "by_range": {b: {"metrics": mean_metrics([bins[b].metrics for bins in by_range]),
                         "pixels": int(sum(bins[b].n_scored for bins in by_range))} for b in labels},
    }


def summarise(records: list[FrameRecord], context: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json content: context (bag, topics, model, split, method_labels: key -> label in table
    order) plus aggregates over ``records``: held-out scores and dense ground-truth scores per method."""
    scored = [r for r in records if r.scored]
    methods: dict[str, Any] = {}
    present = {method for r in scored for method in (*r.scores, *r.gt_scores)}
    for method, label in context["method_labels"].items():
        if scored and method not in present:
            continue  # does not apply to this model (e.g. "as published" for a relative model)
        per_frame = [r.scores[method] for r in scored if method in r.scores]
        gt = np.concatenate([r.held_out.depth for r in scored if method in r.predictions] or [np.zeros(0)])
        pred = np.concatenate([r.predictions[method] for r in scored if method in r.predictions] or [np.zeros(0)])
        methods[method] = {
            "label": label,
            "metrics": mean_metrics([s.metrics for s in per_frame]),
            "frames_with_metrics": sum(s.metrics is not None for s in per_frame),
            "points_scored": int(sum(s.n_scored for s in per_frame)),
            "coverage": _finite_or_none(np.mean([s.coverage for s in per_frame])) if per_frame else None,
            "by_range": {
                label_: {"metrics": scores.metrics, "points": scores.n_scored}
                for label_, scores in score_by_range(pred, gt).items()
            },
            "ground_truth": _ground_truth_summary(scored, method),
        }
    flickers = [r.flicker for r in scored if r.flicker is not None]
    timings: dict[str, list[float]] = {}
    for record in records:
        for stage, value in record.timings_ms.items():
            timings.setdefault(stage, []).append(value)
    return {
        **context,
        "ground_truth": {**context.get("ground_truth", {}), "frames": sum(r.n_ground_truth > 0 for r in scored)},
        "frames": {
            "total": len(records),
            "scored": len(scored),
            "skipped": len(records) - len(scored),
            "skip_reasons": dict(Counter(r.reason for r in records if not r.scored)),
        },
        "methods": methods,
        "alignment_fits": {
            "succeeded": sum(not r.fit_reason for r in scored),
            "failed": dict(Counter(reason_kind(r.fit_reason) for r in scored if r.fit_reason)),
            "failed_example": {reason_kind(r.fit_reason): r.fit_reason for r in reversed(scored) if r.fit_reason},
            "filter_states": dict(Counter(r.filter_state for r in scored)),
        },
        "temporal": {
            "log_scale_jitter": _finite_or_none(consecutive_jitter(np.log([r.scale for r in scored]))),
            "shift_jitter": _finite_or_none(consecutive_jitter(np.array([r.shift for r in scored]))),
            "unfiltered_log_scale_jitter": _finite_or_none(consecutive_jitter(np.log([r.fit_scale for r in scored]))),
            "unfiltered_shift_jitter": _finite_or_none(consecutive_jitter(np.array([r.fit_shift for r in scored]))),
            "static_pairs": len(flickers),
            "flicker_median_rel": _finite_or_none(float(np.mean(flickers))) if flickers else None,
        },
        "timing_ms": {stage: {"mean": float(np.mean(v)), "p50": float(np.percentile(v, 50)),
                              "p95": float(np.percentile(v, 95)), "frames": len(v)} for stage, v in timings.items()},
    }


def per_frame_csv(records: list[FrameRecord], methods: list[str]) -> str:
    columns = ["index", "stamp_ns", "status", "reason", "n_lidar", "n_fitting", "n_held_out", "lidar_offset_ms",
               "scale", "shift", "filter_state", "fit_scale", "fit_shift", "fit_inlier_ratio", "fit_reason", "flicker",
               "n_ground_truth"]
    columns += [f"{method}_{metric}" for method in methods for metric in ("abs_rel", "rmse", "delta1", "coverage")]
    columns += [f"{method}_gt_{metric}" for method in methods for metric in ("abs_rel", "rmse", "delta1")]
    stages = sorted({stage for r in records for stage in r.timings_ms})
    columns += [f"ms_{stage}" for stage in stages]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for r in records:
        row: dict[str, Any] = {
            "index": r.index, "stamp_ns": r.stamp_ns, "status": "scored" if r.scored else "skipped",
            "reason": r.reason, "n_lidar": r.n_lidar, "n_fitting": r.n_fitting, "n_held_out": r.n_held_out,
            "lidar_offset_ms": r.lidar_offset_ms, "scale": r.scale, "shift": r.shift,
            "filter_state": r.filter_state, "fit_scale": r.fit_scale, "fit_shift": r.fit_shift,
            "fit_inlier_ratio": r.fit_inlier_ratio, "fit_reason": r.fit_reason,
            "flicker": "" if r.flicker is None else r.flicker, "n_ground_truth": r.n_ground_truth,
        }
        for method, scores in r.scores.items():
            metrics = scores.metrics or {}
            for metric in ("abs_rel", "rmse", "delta1"):
                row[f"{method}_{metric}"] = metrics.get(metric, "")
            row[f"{method}_coverage"] = scores.coverage
        for method, scores in r.gt_scores.items():
            row.update({f"{method}_gt_{metric}": (scores.metrics or {}).get(metric, "")
                        for metric in ("abs_rel", "rmse", "delta1")})
        row.update({f"ms_{stage}": value for stage, value in r.timings_ms.items()})
        writer.writerow(row)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------


def _save(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _atomic_write(path, buffer.getvalue())


def on_ground_truth(summary: dict[str, Any]) -> bool:
    """Whether the run's main scores are against dense ground truth (else held-out LiDAR points)."""
    return summary["ground_truth"]["frames"] > 0


def main_metrics(summary: dict[str, Any], method: str) -> dict[str, float] | None:
    """A method's mean metrics on ground truth when the run has it, else on the held-out points."""
    data = summary["methods"].get(method)
    if data is None:
        return None
    return data["ground_truth"]["metrics"] if on_ground_truth(summary) else data["metrics"]


def _basis(summary: dict[str, Any]) -> str:
    return "dense ground truth" if on_ground_truth(summary) else "held-out LiDAR points"


def plot_error_vs_range(summary: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    labels = [bin_label(low, high) for low, high in RANGE_BINS]
    figure, axis = plt.subplots(figsize=(7, 3.8))
    methods = summary["methods"]
    width = 0.8 / max(len(methods), 1)
    for i, data in enumerate(methods.values()):
        by_range = data["ground_truth"]["by_range"] if on_ground_truth(summary) else data["by_range"]
        values = [(by_range[b]["metrics"] or {}).get("abs_rel", np.nan) for b in labels]
        axis.bar(np.arange(len(labels)) + (i - (len(methods) - 1) / 2) * width, values, width, label=data["label"])
    axis.set_xticks(np.arange(len(labels)), labels)
    axis.set_xlabel("depth of the scored pixel (" + _basis(summary) + ")")
    axis.set_ylabel("AbsRel")
    axis.legend(fontsize=7)
    axis.set_title("Error by range")
    _save(figure, path)
    plt.close(figure)


def plot_per_frame(records: list[FrameRecord], labels: dict[str, str], ground_truth: bool, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scored = [r for r in records if r.scored]
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for method, label in labels.items():
        scores = [(r.gt_scores if ground_truth else r.scores).get(method) for r in scored]
        values = [(s.metrics or {}).get("abs_rel", np.nan) if s is not None else np.nan for s in scores]
        axis.plot([r.index for r in scored], values, marker="o", markersize=3, label=label)
    axis.set_xlabel("frame")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("AbsRel (" + ("dense ground truth" if ground_truth else "held-out points") + ")")
    axis.set_yscale("log")
    axis.legend(fontsize=7)
    axis.set_title("Per-frame error")
    _save(figure, path)
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------------
# Several configurations of one run: the LiDAR density sweep and the model comparison
# ----------------------------------------------------------------------------------------------------------------

_TABLE_METRICS = ("abs_rel", "rmse", "delta1")


@dataclass(frozen=True)
class Variant:
    """One configuration scored on every frame: a model at a LiDAR density (beams None = as recorded)."""

    model: str
    beams: int | None

    @property
    def label(self) -> str:
        return f"{self.model}, {'all' if self.beams is None else self.beams} beams"


class _Model(Protocol):
    name: str
    output_kind: str
    info: dict[str, Any]


def _alignment_success(summary: dict[str, Any]) -> float | None:
    scored = summary["frames"]["scored"]
    return summary["alignment_fits"]["succeeded"] / scored if scored else None


def _latency_ms(summary: dict[str, Any]) -> float | None:
    """Mean per-frame time of the network and the LiDAR alignment, or a prompt model's prompt building
    (decoding and scoring left out)."""
    timing = summary["timing_ms"]
    stages = [timing[stage]["mean"] for stage in ("inference", "depth_stage", "prompt") if stage in timing]
    return float(sum(stages)) if stages else None


def beam_sweep(variants: list[tuple[Variant, dict[str, Any]]], model: str, methods: Sequence[DepthMethod],
               ) -> list[dict[str, Any]]:
    """Accuracy vs LiDAR beams for ``model``: one row per beam count (variant.beams, None = as recorded),
    each method's main metrics (``main_metrics``) and the alignment's success rate."""
    rows = []
    for variant, summary in variants:
        if variant.model != model:
            continue
        rows.append({"beams": variant.beams, "basis": _basis(summary),
                     "alignment_success_rate": _alignment_success(summary),
                     "methods": {m.key: {k: (main_metrics(summary, m.key) or {}).get(k) for k in _TABLE_METRICS}
                                 for m in methods if m.key in summary["methods"]}})
    return rows


def model_comparison(variants: list[tuple[Variant, dict[str, Any]]], models: Sequence[_Model],
                     methods: Sequence[DepthMethod]) -> list[dict[str, Any]]:
    """One row per model at the run's first beam setting: each network method's main metrics, alignment
    success rate and latency per frame (inference + alignment, ms). LiDAR-only methods are the same for every
    model: the report shows them once (``summary["methods"]``)."""
    rows = []
    for model in models:
        variant, summary = next((v, s) for v, s in variants if v.model == model.name)
        rows.append({"model": model.name, "output_kind": model.output_kind, "beams": variant.beams,
                     "random_weights": bool(model.info.get("random_weights", False)),
                     "alignment_success_rate": _alignment_success(summary), "latency_ms": _latency_ms(summary),
                     "methods": {m.key: {k: (main_metrics(summary, m.key) or {}).get(k) for k in _TABLE_METRICS}
                                 for m in methods if m.uses_network and m.key in summary["methods"]}})
    return rows


def headline(summary: dict[str, Any]) -> str:
    """'At N beams, DPT + alignment AbsRel a vs LiDAR-only b (IP-Basic c) on <basis>' for the sparsest setting."""
    row = min(summary["sweep"], key=lambda r: r["beams"] if r["beams"] is not None else math.inf)
    native = summary["lidar"]["beams"]
    beams = row["beams"] if row["beams"] is not None else (native[0] if len(native) == 1 else "all recorded")

    def abs_rel(method: str) -> str:
        value = row["methods"].get(method, {}).get("abs_rel")
        return _fmt(value)

    text = (f"At {beams} beams, DPT + alignment (the node): AbsRel {abs_rel('node')} vs LiDAR-only: "
            f"{abs_rel('lidar_only')} (nearest neighbour), {abs_rel('ip_basic')} (IP-Basic) on {row['basis']}")
    if summary["model"].get("random_weights"):
        text += " — random network weights: the DPT numbers are not a trained model's, the LiDAR ones are real"
    return text


def plot_beam_sweep(summary: dict[str, Any], path: Path) -> None:
    """AbsRel and δ1 vs beams, one line per method."""
    import matplotlib.pyplot as plt

    rows = [r for r in summary["sweep"] if r["beams"] is not None]
    beams = [r["beams"] for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, data in summary["methods"].items():
        for axis, metric in zip(axes, ("abs_rel", "delta1")):
            values = [r["methods"].get(method, {}).get(metric) for r in rows]
            axis.plot(beams, [np.nan if v is None else v for v in values], marker="o", label=data["label"])
    for axis, name in zip(axes, ("AbsRel", "δ < 1.25")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(beams, [str(b) for b in beams])
        axis.set_xlabel("LiDAR beams given to the methods")
        axis.set_ylabel(f"{name} ({rows[0]['basis'] if rows else ''})")
    axes[0].legend(fontsize=7)
    figure.suptitle("Accuracy vs LiDAR density", fontsize=10, y=1.03)
    _save(figure, path)
    plt.close(figure)


def plot_models(summary: dict[str, Any], path: Path) -> None:
    """Per model: AbsRel of the node, alignment success rate, latency per frame."""
    import matplotlib.pyplot as plt

    rows = summary["models"]
    names = [r["model"] for r in rows]
    panels = (("AbsRel (the node)", [r["methods"].get("node", {}).get("abs_rel") for r in rows]),
              ("alignment success rate", [r["alignment_success_rate"] for r in rows]),
              ("latency per frame (ms)", [r["latency_ms"] for r in rows]))
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for axis, (title, values) in zip(axes, panels):
        axis.bar(np.arange(len(rows)), [np.nan if v is None else v for v in values])
        axis.set_xticks(np.arange(len(rows)), names, rotation=20, fontsize=7)
        axis.set_title(title, fontsize=9)
    figure.suptitle("Model comparison on the same frames and points", fontsize=10, y=1.03)
    _save(figure, path)
    plt.close(figure)


def plot_scale_shift(records: list[FrameRecord], path: Path) -> None:
    import matplotlib.pyplot as plt

    scored = [r for r in records if r.scored]
    time_s = [(r.stamp_ns - records[0].stamp_ns) / 1e9 for r in scored]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    panels = ((top, "scale", "fit_scale", "scale s"), (bottom, "shift", "fit_shift", "shift t"))
    for axis, filtered, raw, name in panels:
        axis.plot(time_s, [getattr(r, raw) for r in scored], "o", markersize=3, alpha=0.6, label="this frame's fit")
        axis.plot(time_s, [getattr(r, filtered) for r in scored], "-", label="filtered (published)")
        axis.set_ylabel(name)
    top.legend(fontsize=7)
    bottom.set_xlabel("time since the first image (s)")
    top.set_title("Alignment 1/z = s·pred + t over time")
    _save(figure, path)
    plt.close(figure)


def plot_example(rgb: np.ndarray, depth: np.ndarray | None, rows: np.ndarray, cols: np.ndarray,
                 relative_error: np.ndarray, title: str, path: Path, where: str = "held-out LiDAR points") -> None:
    """image | metric depth | signed relative error (pred/reference − 1) at (rows, cols): ``where`` says what
    the reference is (held-out LiDAR points or ground-truth pixels)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    axes[0].imshow(rgb)
    axes[0].set_title("image")
    if depth is not None:
        shown = axes[1].imshow(depth, cmap="turbo", vmin=0.0, vmax=float(np.nanpercentile(depth, 98)))
        figure.colorbar(shown, ax=axes[1], fraction=0.035, label="m")
    axes[1].set_title("depth (the node's output)")
    axes[2].imshow(rgb.mean(axis=2), cmap="gray", vmin=0, vmax=255)
    points = axes[2].scatter(cols, rows, c=relative_error, s=4, cmap="coolwarm", vmin=-0.3, vmax=0.3)
    figure.colorbar(points, ax=axes[2], fraction=0.035, label="pred / reference − 1")
    axes[2].set_title(f"error at {where}")
    for axis in axes:
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    _save(figure, path)
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------------
# report.md
# ----------------------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _metric_rows(summary: dict[str, Any], ground_truth: bool) -> list[str]:
    """The per-method table (mean over frames) on ground truth or on the held-out points."""
    unit = "pixels" if ground_truth else "points"
    lines = ["| method | " + " | ".join(HEADLINE_METRICS) + f" | coverage | {unit} |",
             "|---" * (len(HEADLINE_METRICS) + 3) + "|"]
    for data in summary["methods"].values():
        scores = data["ground_truth"] if ground_truth else data
        metrics = scores["metrics"] or {}
        count = scores["pixels_scored"] if ground_truth else scores["points_scored"]
        lines.append(f"| {data['label']} | " + " | ".join(_fmt(metrics.get(m)) for m in HEADLINE_METRICS)
                     + f" | {_fmt(scores['coverage'])} | {count} |")
    return lines


def _range_rows(summary: dict[str, Any], ground_truth: bool) -> list[str]:
    labels = [bin_label(low, high) for low, high in RANGE_BINS]
    lines = ["| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for data in summary["methods"].values():
        by_range = data["ground_truth"]["by_range"] if ground_truth else data["by_range"]
        count = "pixels" if ground_truth else "points"
        cells = [f"{_fmt((by_range[b]['metrics'] or {}).get('abs_rel'))} ({by_range[b][count]})" for b in labels]
        lines.append(f"| {data['label']} | " + " | ".join(cells) + " |")
    return lines


def _sweep_rows(summary: dict[str, Any]) -> list[str]:
    keys = [key for key in summary["methods"]]
    lines = ["| beams | " + " | ".join(summary["methods"][k]["label"] for k in keys) + " | alignment success |",
             "|---" * (len(keys) + 2) + "|"]
    for row in summary["sweep"]:
        cells = [f"{_fmt(row['methods'].get(k, {}).get('abs_rel'))} / {_fmt(row['methods'].get(k, {}).get('delta1'))}"
                 for k in keys]
        beams = "all" if row["beams"] is None else str(row["beams"])
        lines.append(f"| {beams} | " + " | ".join(cells) + f" | {_fmt(row['alignment_success_rate'], 2)} |")
    return lines


def _model_rows(summary: dict[str, Any]) -> list[str]:
    network = [key for key in summary["methods"] if any(key in row["methods"] for row in summary["models"])]
    lines = ["| model | " + " | ".join(f"{summary['method_labels'].get(k, k)} AbsRel / δ1" for k in network)
             + " | alignment success | latency per frame (ms) |", "|---" * (len(network) + 3) + "|"]
    for row in summary["models"]:
        cells = [f"{_fmt(row['methods'].get(k, {}).get('abs_rel'))} / {_fmt(row['methods'].get(k, {}).get('delta1'))}"
                 for k in network]
        name = row["model"] + (" (random weights)" if row["random_weights"] else "")
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {_fmt(row['alignment_success_rate'], 2)} | {_fmt(row['latency_ms'], 1)} |")
    lidar_only = [(key, data) for key, data in summary["methods"].items() if key not in network]
    lines += ["", "Without a network, on the same pixels: " + "; ".join(
        f"{data['label']} AbsRel {_fmt((main_metrics(summary, key) or {}).get('abs_rel'))} / δ1 "
        f"{_fmt((main_metrics(summary, key) or {}).get('delta1'))}" for key, data in lidar_only) + "."]
    return lines


def render_report(summary: dict[str, Any], example_files: list[str]) -> str:
    frames, temporal = summary["frames"], summary["temporal"]
    has_held_out = any(data["points_scored"] for data in summary["methods"].values())
    truth = summary["ground_truth"]
    lines = [
        f"# Depth evaluation of `{summary['bag']}`",
        "",
        f"**{summary['headline']}**",
        "",
        f"Model: **{summary['model']['preset']}**"
        + (f" — **random weights** (no trained weights found; seeded with --seed {summary['model'].get('seed')}): "
           "the network output is noise, so the DPT numbers show what the LiDAR alignment alone achieves; the "
           "LiDAR-only numbers are real" if summary["model"]["random_weights"] else ""),
    ]
    if summary.get("recording_warning"):
        lines += ["", f"**Warning: {summary['recording_warning']}.**"]
    lines += [
        "",
        f"Frames: {frames['total']} images, {frames['scored']} scored, {frames['skipped']} skipped. "
        f"Held-out split: {summary['holdout']['description']}; held-out scores use held-out LiDAR points only, at "
        "pixels no fitting point touches.",
    ]
    if truth["frames"]:
        lines += ["", f"## Error on dense ground truth (mean over {truth['frames']} frames)", "",
                  f"Ground truth: `{truth['source']}`; crop: {truth['crop']}; every ground-truth pixel in "
                  f"({summary['scoring_range_m'][0]:g}, {summary['scoring_range_m'][1]:g}) m counts, predictions "
                  "clamped to that range (KITTI protocol).", ""]
        lines += _metric_rows(summary, ground_truth=True)
        lines += ["", "### AbsRel by range (ground truth; mean over frames, pixels in brackets)", ""]
        lines += _range_rows(summary, ground_truth=True)
    if has_held_out:
        lines += ["", "## Held-out error (mean over frames)", ""] + _metric_rows(summary, ground_truth=False)
        lines += ["", "## AbsRel by range (all held-out points pooled)", ""] + _range_rows(summary, False)
    if len(summary["sweep"]) > 1:
        rings = ", ".join(summary["lidar"]["rings_from"])
        lines += ["", "## Accuracy vs LiDAR beams", "",
                  f"The fitting scan keeps every k-th ring of the {'/'.join(map(str, summary['lidar']['beams']))}-beam "
                  f"LiDAR (rings from {rings}); scores on {summary['sweep'][0]['basis']}, AbsRel / δ1:", ""]
        lines += _sweep_rows(summary) + ["", "![accuracy vs beams](beams_sweep.png)"]
    if len(summary["models"]) > 1:
        lines += ["", "## Model comparison (same frames, same points)", ""] + _model_rows(summary)
        lines += ["", "![model comparison](models.png)"]
    fits = summary["alignment_fits"]
    lines += ["", "## Alignment", "",
              f"- this frame's LiDAR fit succeeded in {fits['succeeded']} of {frames['scored']} scored frames; "
              "filter states: " + ", ".join(f"{state} {n}" for state, n in fits["filter_states"].items())]
    lines += [f"- {n} × fit failed: {reason} (e.g. \"{fits['failed_example'][reason]}\"; every frame's reason is in "
              "per_frame.csv)" for reason, n in fits["failed"].items()]
    node = summary["methods"]["node"]
    if not (node["points_scored"] or node["ground_truth"]["pixels_scored"]):
        lines.append("- **the node published no metric depth** (it never passes relative values off as metres): the "
                     "prediction did not fit the LiDAR" + (" — expected with random weights" if summary["model"].get(
                         "random_weights") else ""))
    lines += [
        "", "![error vs range](error_vs_range.png)", "", "![per-frame AbsRel](per_frame_abs_rel.png)", "",
        "## Temporal stability", "",
        f"- frame-to-frame RMS change of log s: {_fmt(temporal['log_scale_jitter'], 4)} published, "
        f"{_fmt(temporal['unfiltered_log_scale_jitter'], 4)} per-frame fits",
        f"- frame-to-frame RMS change of t: {_fmt(temporal['shift_jitter'], 5)} published, "
        f"{_fmt(temporal['unfiltered_shift_jitter'], 5)} per-frame fits",
        f"- depth flicker on static pixels (median |Δz|/z over {temporal['static_pairs']} frame pairs where the view "
        f"stood still): {_fmt(temporal['flicker_median_rel'], 4)}",
        "", "![scale and shift](scale_shift.png)", "",
    ]
    if frames["skip_reasons"]:
        lines += ["## Skipped frames", ""]
        lines += [f"- {count} × {reason}" for reason, count in frames["skip_reasons"].items()]
        lines.append("")
    lines += ["## Time per frame (ms)", "", "| stage | mean | p50 | p95 |", "|---|---|---|---|"]
    lines += [f"| {stage} | {t['mean']:.1f} | {t['p50']:.1f} | {t['p95']:.1f} |"
              for stage, t in summary["timing_ms"].items()]
    lines += ["", "## Examples", ""] + [f"![{name}]({name})" for name in example_files] + [""]
    return "\n".join(lines)


def write_run_folder(run_dir: Path, records: list[FrameRecord], summary: dict[str, Any],
                     example_files: list[str]) -> Path:
    """Write metrics.json, per_frame.csv, the plots and report.md into ``run_dir``; returns report.md's path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(run_dir / "metrics.json", json.dumps(_json_safe(summary), indent=2, allow_nan=False).encode())
    _atomic_write(run_dir / "per_frame.csv", per_frame_csv(records, list(summary["methods"])).encode())
    plot_error_vs_range(summary, run_dir / "error_vs_range.png")
    labels = {key: data["label"] for key, data in summary["methods"].items()}
    plot_per_frame(records, labels, on_ground_truth(summary), run_dir / "per_frame_abs_rel.png")
    plot_scale_shift(records, run_dir / "scale_shift.png")
    for name in ("beams_sweep.png", "models.png"):  # a re-used run folder must not show another run's plots
        (run_dir / name).unlink(missing_ok=True)
    if len(summary["sweep"]) > 1:
        plot_beam_sweep(summary, run_dir / "beams_sweep.png")
    if len(summary["models"]) > 1:
        plot_models(summary, run_dir / "models.png")
    report = run_dir / "report.md"
    _atomic_write(report, render_report(summary, example_files).encode())
    return report
