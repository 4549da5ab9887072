"""Aggregating per-frame evaluation records into metrics.json, per_frame.csv, PNG plots and report.md.

All files are written atomically (temporary file + rename), so an interrupted run never leaves a half
report that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

# method key -> what it is, for tables and legends; the first is what the node publishes
METHODS: dict[str, str] = {
    "node": "DPT + robust alignment + temporal filter (the node)",
    "least_squares": "DPT + plain least squares",
    "median_scaling": "DPT + median scaling",
    "lidar_only": "LiDAR only (nearest held-in point)",
}
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


def summarise(records: list[FrameRecord], context: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json content: context (bag, topics, model, split) plus aggregates over ``records``."""
    scored = [r for r in records if r.scored]
    methods: dict[str, Any] = {}
    for method, label in METHODS.items():
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
        }
    flickers = [r.flicker for r in scored if r.flicker is not None]
    timings: dict[str, list[float]] = {}
    for record in records:
        for stage, value in record.timings_ms.items():
            timings.setdefault(stage, []).append(value)
    return {
        **context,
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


def per_frame_csv(records: list[FrameRecord]) -> str:
    columns = ["index", "stamp_ns", "status", "reason", "n_lidar", "n_fitting", "n_held_out", "lidar_offset_ms",
               "scale", "shift", "filter_state", "fit_scale", "fit_shift", "fit_inlier_ratio", "fit_reason", "flicker"]
    columns += [f"{method}_{metric}" for method in METHODS for metric in ("abs_rel", "rmse", "delta1", "coverage")]
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
            "flicker": "" if r.flicker is None else r.flicker,
        }
        for method, scores in r.scores.items():
            metrics = scores.metrics or {}
            for metric in ("abs_rel", "rmse", "delta1"):
                row[f"{method}_{metric}"] = metrics.get(metric, "")
            row[f"{method}_coverage"] = scores.coverage
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


def plot_error_vs_range(summary: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    labels = [bin_label(low, high) for low, high in RANGE_BINS]
    figure, axis = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(METHODS)
    for i, (method, data) in enumerate(summary["methods"].items()):
        values = [(data["by_range"][b]["metrics"] or {}).get("abs_rel", np.nan) for b in labels]
        axis.bar(np.arange(len(labels)) + (i - (len(METHODS) - 1) / 2) * width, values, width, label=METHODS[method])
    axis.set_xticks(np.arange(len(labels)), labels)
    axis.set_xlabel("LiDAR depth of the held-out point")
    axis.set_ylabel("AbsRel (held-out points)")
    axis.legend(fontsize=7)
    axis.set_title("Error by range")
    _save(figure, path)
    plt.close(figure)


def plot_per_frame(records: list[FrameRecord], path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scored = [r for r in records if r.scored]
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for method in METHODS:
        values = [(r.scores[method].metrics or {}).get("abs_rel", np.nan) if method in r.scores else np.nan
                  for r in scored]
        axis.plot([r.index for r in scored], values, marker="o", markersize=3, label=METHODS[method])
    axis.set_xlabel("frame")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("AbsRel (held-out points)")
    axis.set_yscale("log")
    axis.legend(fontsize=7)
    axis.set_title("Per-frame error")
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
                 relative_error: np.ndarray, title: str, path: Path) -> None:
    """image | metric depth | signed relative error (pred/lidar − 1) at the held-out LiDAR pixels."""
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
    figure.colorbar(points, ax=axes[2], fraction=0.035, label="pred / LiDAR − 1")
    axes[2].set_title("error at held-out LiDAR points")
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


def render_report(summary: dict[str, Any], example_files: list[str]) -> str:
    frames, temporal = summary["frames"], summary["temporal"]
    lines = [
        f"# Depth evaluation of `{summary['bag']}`",
        "",
        f"Model: **{summary['model']['preset']}**"
        + (" — **random weights** (no trained weights found): the network output is noise, so these numbers "
           "show what the LiDAR alignment alone achieves" if summary["model"]["random_weights"] else ""),
        "",
        f"Frames: {frames['total']} images, {frames['scored']} scored, {frames['skipped']} skipped. "
        f"Held-out split: {summary['holdout']['description']}; scores use held-out LiDAR points only, at pixels no "
        "fitting point touches.",
        "",
        "## Held-out error (mean over frames)",
        "",
        "| method | " + " | ".join(HEADLINE_METRICS) + " | coverage | points |",
        "|---" * (len(HEADLINE_METRICS) + 3) + "|",
    ]
    for data in summary["methods"].values():
        metrics = data["metrics"] or {}
        lines.append(f"| {data['label']} | " + " | ".join(_fmt(metrics.get(m)) for m in HEADLINE_METRICS)
                     + f" | {_fmt(data['coverage'])} | {data['points_scored']} |")
    labels = [bin_label(low, high) for low, high in RANGE_BINS]
    lines += ["", "## AbsRel by range (all held-out points pooled)", "",
              "| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for data in summary["methods"].values():
        cells = [f"{_fmt((data['by_range'][b]['metrics'] or {}).get('abs_rel'))} ({data['by_range'][b]['points']})"
                 for b in labels]
        lines.append(f"| {data['label']} | " + " | ".join(cells) + " |")
    fits = summary["alignment_fits"]
    lines += ["", "## Alignment", "",
              f"- this frame's LiDAR fit succeeded in {fits['succeeded']} of {frames['scored']} scored frames; "
              "filter states: " + ", ".join(f"{state} {n}" for state, n in fits["filter_states"].items())]
    lines += [f"- {n} × fit failed: {reason} (e.g. \"{fits['failed_example'][reason]}\"; every frame's reason is in "
              "per_frame.csv)" for reason, n in fits["failed"].items()]
    if not summary["methods"]["node"]["points_scored"]:
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
    _atomic_write(run_dir / "per_frame.csv", per_frame_csv(records).encode())
    plot_error_vs_range(summary, run_dir / "error_vs_range.png")
    plot_per_frame(records, run_dir / "per_frame_abs_rel.png")
    plot_scale_shift(records, run_dir / "scale_shift.png")
    report = run_dir / "report.md"
    _atomic_write(report, render_report(summary, example_files).encode())
    return report
