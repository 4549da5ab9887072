"""`dpt-train` and `dpt-eval` command lines (YAML config + `section.key=value` overrides).

    dpt-train --config config/train_kitti.yaml run_dir=runs/kitti01 batch_size=8
    dpt-train --config runs/kitti01/config.yaml --resume auto          # continue an interrupted run
    torchrun --nproc_per_node=4 -m dpt_train.cli train --config ...    # DDP (same as dpt-train)
    dpt-eval --config config/train_kitti.yaml --weights runs/kitti01/weights/best.pt --out eval/
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch.distributed as dist  # noqa: E402
import yaml  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dpt_ros.eval.depth_metrics import METRIC_NAMES, format_table  # noqa: E402
from dpt_ros.model.checkpoint import WeightsError  # noqa: E402
from dpt_ros.model.engine import InferenceEngine  # noqa: E402
from dpt_ros.tools.cli import ArgumentParser, user_error  # noqa: E402
from dpt_train.checkpoint import DiskFullError, NoLoadableCheckpointError, atomic_write_text  # noqa: E402
from dpt_train.config import load_config, save_config  # noqa: E402
from dpt_train.data import BadSampleError, dataset_from_config  # noqa: E402
from dpt_train.engine import Trainer, init_distributed  # noqa: E402
from dpt_train.evaluate import evaluate_dataset  # noqa: E402
from dpt_train.model import resolve_preset  # noqa: E402
from dpt_train.recipe import RecipeError  # noqa: E402

_PRECISION = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}
# What a user can cause and fix: a bad config value or override, a missing or unreadable file (config, split,
# image, weights, checkpoint), data the recipe cannot use. Each ends the command with one line and status 2.
USER_ERRORS = (ValueError, OSError, yaml.YAMLError, WeightsError, BadSampleError, RecipeError)


def _setup_logging() -> None:
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of `dpt-train`."""
    parser = ArgumentParser(prog="dpt-train", description="Fine-tune a DPT depth model on KITTI.")
    parser.add_argument("--config", help="YAML config (defaults: dpt_train.config.TrainConfig)")
    parser.add_argument("--resume", help="step checkpoint to resume from, or 'auto' for the run's newest")
    parser.add_argument("overrides", nargs="*", help="section.key=value (value parsed as YAML)")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        return _train(args)
    except USER_ERRORS as error:
        return user_error(parser.prog, error)


def _train(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    context = init_distributed(config.device)
    trainer = Trainer(config, context)
    try:
        trainer.start(args.resume)
        metrics = trainer.fit()
        if context.is_main and metrics is not None:
            print(format_table(metrics))
    except (DiskFullError, NoLoadableCheckpointError) as error:  # what to fix is outside the program: one line
        tqdm.write(f"dpt-train: {error}", file=sys.stderr)  # on its own line, even with a progress bar open
        return 2
    finally:
        trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _plot_abs_rel(per_image: list[tuple[int, dict[str, float]]], png_path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.hist([metrics["abs_rel"] for _, metrics in per_image], bins=40)
    axis.set(xlabel="AbsRel per image", ylabel="images", title=f"{len(per_image)} images")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of `dpt-eval`: the KITTI metric table of a model on a split, plus per-image results."""
    parser = ArgumentParser(prog="dpt-eval", description="Evaluate a DPT depth model on a KITTI split.")
    parser.add_argument("--config", help="YAML config (a run's config.yaml rebuilds its exact network)")
    parser.add_argument("--weights", help="weights file (official .pt, dpt-train weights or checkpoint)")
    parser.add_argument("--split", help="split file to evaluate (default: data.val_split)")
    parser.add_argument("--out", default="eval", help="output folder for metrics.json, per_image.csv, PNGs")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. eval.crop=eigen")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        return _evaluate(args)
    except USER_ERRORS as error:
        return user_error(parser.prog, error)


def _evaluate(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.weights:
        overrides.append(f"model.weights={args.weights}")
    if args.split:
        overrides.append(f"data.val_split={args.split}")
    config = load_config(args.config, overrides)
    data = config.data
    # The node's inference engine, run at the KB crop size (the network input of the KITTI protocol).
    engine = InferenceEngine(
        resolve_preset(config.model), config.model.weights, device=config.device,
        precision=_PRECISION[config.amp],
        input_size=(data.augment.kb_width, data.augment.kb_height) if data.augment.kb_crop else None,
    )
    dataset = dataset_from_config(data, "val", train=False)
    result = evaluate_dataset(lambda batch: engine.infer(batch["rgb"][0].numpy()), dataset, config.eval, None,
                              data.num_workers, panels=config.image_panels, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    summary = {"images": result.aggregate.count, "unscored": result.unscored,
               "lines_without_ground_truth": dataset.without_depth, "missing": dataset.missing,
               **result.aggregate.mean()}
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split_line", *METRIC_NAMES])
        for line, metrics in result.per_image:
            writer.writerow([line, *(f"{metrics[name]:.6f}" for name in METRIC_NAMES)])
    _plot_abs_rel(result.per_image, out / "abs_rel_histogram.png")
    if result.panels:
        plt.imsave(out / "panels.png", np.concatenate(result.panels, axis=0))
    print(f"{result.aggregate.count} images scored ({dataset.without_depth} split lines without ground truth)")
    print(format_table(result.aggregate.mean()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m dpt_train.cli train|eval ...` (what torchrun launches)."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {"train": train_main, "eval": eval_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m dpt_train.cli {train,eval} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
