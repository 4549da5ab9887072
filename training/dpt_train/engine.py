"""The training loop: one Trainer per process, single-process or DDP under torchrun.

`train_on_batch` does one optimisation step; `validate` scores the validation split with the KITTI
metrics; `fit` runs steps to config.max_steps with periodic validation and checkpoints, and `--resume`
continues exactly where a checkpoint left off (model, optimiser, scheduler, scaler, RNG states, step).
Only rank 0 writes files (checkpoints, logs, TensorBoard, plots).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from dpt_ros.eval.depth_metrics import HIGHER_IS_BETTER, METRIC_NAMES, MetricAggregator
from dpt_train.checkpoint import (
    CheckpointWriter,
    atomic_write_text,
    disk_full_says_where,
    drop_records_after,
    load_checkpoint,
    newest_loadable_checkpoint,
    remove_orphaned_temporaries,
)
from dpt_train.config import OptimConfig, TrainConfig, save_config, to_dict
from dpt_train.data import ResumableDistributedSampler, ShardSampler, collate_samples, dataset_from_config
from dpt_train.evaluate import evaluate_dataset, model_predictor
from dpt_train.losses import scale_shift_invariant_loss, silog_loss
from dpt_train.model import build_training_model, fold_scale_shift, resolve_preset
from dpt_train.plots import plot_training_curves
from dpt_train.recipe import estimate_scale_shift

LOG = logging.getLogger(__name__)
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: rank / world_size from torchrun's environment (0 / 1 without it)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str = "auto") -> DistributedContext:
    """Join the torchrun process group if there is one (NCCL on CUDA, gloo on CPU); pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_request == "auto":
        device_request = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_request)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, device)


def parameter_groups(model: torch.nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
    """Backbone (`pretrained.*`) at backbone_lr, everything else (decoder `scratch.*`, heads) at decoder_lr.
    Biases and normalisation weights (1-D tensors) get no weight decay."""
    groups = {(name, decay): [] for name in ("backbone", "decoder") for decay in (True, False)}
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad:
            part = "backbone" if parameter_name.startswith("pretrained.") else "decoder"
            groups[(part, parameter.ndim > 1)].append(parameter)
    learning_rates = {"backbone": optim.backbone_lr, "decoder": optim.decoder_lr}
    return [
        {"params": params, "lr": learning_rates[part], "weight_decay": optim.weight_decay if decay else 0.0,
         "name": f"{part}" if decay else f"{part}_no_decay"}
        for (part, decay), params in groups.items() if params
    ]


class WarmupDecay:
    """Learning-rate factor at a step: linear warm-up, then cosine / poly(0.9) decay to min_ratio.

    A small class rather than a lambda so that LambdaLR can save and restore it in checkpoints.
    """

    def __init__(self, warmup_steps: int, total_steps: int, decay: str, min_ratio: float) -> None:
        self.warmup_steps, self.total_steps, self.decay, self.min_ratio = warmup_steps, total_steps, decay, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "none":
            return 1.0
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.decay == "cosine" else (1.0 - progress) ** 0.9
        return self.min_ratio + (1.0 - self.min_ratio) * shape


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, in weights_only-loadable types."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy_keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_position": int(numpy_state[2]),
        "numpy_gauss": (int(numpy_state[3]), float(numpy_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of capture_rng_state."""
    random.setstate(state["python"])
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_position"],
                         has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Owns model, optimiser, scheduler, scaler, data and the run folder of one training process."""

    def __init__(self, config: TrainConfig, context: DistributedContext | None = None) -> None:
        self.config = config
        self.context = context or init_distributed(config.device)
        if config.batch_size % self.context.world_size:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by {self.context.world_size} ranks")
        if config.best_metric not in METRIC_NAMES:
            raise ValueError(f"best_metric {config.best_metric!r} is not one of {METRIC_NAMES}")
        self.device = self.context.device
        self.run_dir = Path(config.run_dir)
        seed_everything(config.seed)
        self.model = build_training_model(config).to(self.device)
        self.network = self.model
        if self.context.world_size > 1:
            # static_graph: DPT never uses a few official parameters (the ViT's final norm, the deepest
            # fusion block's first residual unit); a static graph lets DDP handle that without searching
            # for unused parameters every step.
            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                static_graph=True,
            )
        groups = parameter_groups(self.model, config.optim)
        if config.optim.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, momentum=config.optim.momentum)
        else:
            optimizer_class = torch.optim.AdamW if config.optim.optimizer == "adamw" else torch.optim.Adam
            self.optimizer = optimizer_class(groups)
        schedule = WarmupDecay(config.optim.warmup_steps, config.max_steps, config.optim.decay,
                               config.optim.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.step = 0
        self.best: float | None = None
        self.skipped_samples = 0
        self.skipped_steps = 0
        mean_std = resolve_preset(config.model).mean_std
        self.train_set = dataset_from_config(config.data, "train", train=True, seed=config.seed, mean_std=mean_std)
        self.val_set = dataset_from_config(config.data, "val", train=False, mean_std=mean_std)
        self.per_rank_batch = config.batch_size // self.context.world_size
        self.sampler = ResumableDistributedSampler(self.train_set, self.context.world_size, self.context.rank,
                                                   config.seed)
        self.steps_per_epoch = len(self.sampler) // self.per_rank_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training samples cannot fill one batch of {config.batch_size}")
        self.checkpoints = CheckpointWriter(self.run_dir, config.keep_last, config.best_metric,
                                            config.best_metric in HIGHER_IS_BETTER)
        self.writer = None
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
            from torch.utils.tensorboard import SummaryWriter  # optional dependency: dpt_ros[train]

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    # ---------------------------------------------------------------- one step
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=_AMP_DTYPES.get(self.config.amp),
                              enabled=self.config.amp in _AMP_DTYPES)

    def compute_loss(self, prediction: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """prediction: (N, H, W) network output (metres, or inverse depth for the ssi loss); depth: metres."""
        loss = self.config.loss
        mask = (depth > loss.min_depth) & (depth < loss.max_depth)
        if loss.kind == "silog":
            return silog_loss(prediction, depth, mask, loss.variance_focus, loss.silog_scale, loss.min_depth)
        inverse_target = torch.where(mask, 1.0 / depth.clamp_min(loss.min_depth), torch.zeros_like(depth))
        return scale_shift_invariant_loss(prediction, inverse_target, mask, loss.gradient_weight)

    def train_on_batch(self, batch: dict) -> dict[str, float]:
        """One optimisation step on this rank's part of the global batch. Returns the global mean loss."""
        self.network.train()
        image = batch["image"].to(self.device, non_blocking=True)
        depth = batch["depth"].to(self.device, non_blocking=True)
        with self._autocast():
            prediction = self.network(image)
        loss = self.compute_loss(prediction, depth)  # float32 whatever the autocast dtype
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        if self.scaler.is_enabled() or torch.isfinite(grad_norm):
            self.scaler.step(self.optimizer)  # the fp16 scaler itself skips steps with inf/NaN gradients
        else:
            self.skipped_steps += 1  # identical on every rank: gradients are all-reduced before this test
            LOG.warning("step %d: non-finite gradient norm, optimiser step skipped", self.step)
        self.scaler.update()
        learning_rates = {f"lr_{group['name']}": group["lr"] for group in self.optimizer.param_groups}
        self.scheduler.step()
        self.step += 1
        self.skipped_samples += int(batch.get("skipped", 0))
        global_loss = loss.detach()
        if self.context.world_size > 1:
            dist.all_reduce(global_loss, op=dist.ReduceOp.AVG)
        return {"loss": global_loss.item(), "grad_norm": float(grad_norm), **learning_rates}

    # ---------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """KITTI metrics over the validation split (sharded across ranks, summed with all_reduce)."""
        result = evaluate_dataset(
            model_predictor(self.model, self.device, _AMP_DTYPES.get(self.config.amp)), self.val_set,
            self.config.eval, ShardSampler(len(self.val_set), self.context.world_size, self.context.rank),
            self.config.data.num_workers, self.config.image_panels if self.context.is_main else 0,
        )
        state = torch.from_numpy(result.aggregate.state())
        if self.context.world_size > 1:
            dist.all_reduce(state)
        metrics = MetricAggregator.from_state(state.numpy()).mean()
        if self.writer is not None:
            for number, panel in enumerate(result.panels):
                self.writer.add_image(f"val/input_prediction_gt_error/{number}", panel, self.step,
                                      dataformats="HWC")
        return metrics

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything --resume needs; "model" is in the official DPT key format."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "step": self.step,
            "best": self.best,
            "config": to_dict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best = state["best"]

    def start(self, resume: str | Path | None = None) -> None:
        """Resume from a step checkpoint (a path, or "auto" for this run's newest that loads, if any);
        otherwise, when configured, run the relative-to-metric recipe on the initial model.

        Temporaries left by a killed writer are removed first; on resume, log records of the steps after
        the checkpoint (written by the killed run, about to be repeated) are dropped.
        """
        if self.context.is_main:
            for orphan in remove_orphaned_temporaries(self.run_dir):
                LOG.info("removed %s, left by a writer that was killed", orphan)
        found = None
        if resume is not None and str(resume) == "auto":
            found = newest_loadable_checkpoint(self.run_dir)
        elif resume is not None:
            found = Path(resume), load_checkpoint(resume)
        if found is not None:
            path, state = found
            self.load_state_dict(state)
            if self.context.is_main:
                for name in ("train", "val"):
                    drop_records_after(self.run_dir / f"{name}.jsonl", self.step)
            LOG.info("resumed from %s at step %d", path, self.step)
            return
        if resume is not None:
            LOG.info("no checkpoint in %s: starting from step 0", self.run_dir)
        if self.config.recipe.estimate_scale_shift:
            self._apply_recipe()

    def _apply_recipe(self) -> None:
        aligned_set = dataset_from_config(
            self.config.data, "train", train=False, mean_std=resolve_preset(self.config.model).mean_std
        )
        scale, shift, fitted = estimate_scale_shift(self.model, aligned_set, self.device, self.config.recipe.samples)
        fold_scale_shift(self.model, scale, shift)
        if self.context.world_size > 1:  # every rank computed the same fold; make it bit-identical
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)
        LOG.info("recipe: mean alignment over %d samples: 1/z = %.6g * x + %.6g", fitted, scale, shift)
        if self.context.is_main:
            atomic_write_text(self.run_dir / "recipe.json",
                              json.dumps({"scale": scale, "shift": shift, "samples": fitted}, indent=2) + "\n")

    # ---------------------------------------------------------------- the loop
    def _log(self, name: str, record: dict[str, Any]) -> None:
        if self.context.is_main:
            log_path = self.run_dir / f"{name}.jsonl"
            with disk_full_says_where(log_path), open(log_path, "a") as handle:
                handle.write(json.dumps({"step": self.step, **record}) + "\n")
            for key, value in record.items():
                self.writer.add_scalar(f"{name}/{key}", value, self.step)

    def _validate_and_keep_best(self) -> dict[str, float]:
        metrics = self.validate()
        self._log("val", metrics)
        value = metrics[self.config.best_metric]
        if self.checkpoints.is_better(value, self.best):
            self.best = value
            if self.context.is_main:
                self.checkpoints.save_weights("best", self.model.state_dict())
        return metrics

    def _save(self) -> None:
        if self.context.is_main:
            self.checkpoints.save_step(self.step, self.state_dict())
            self.checkpoints.save_weights("last", self.model.state_dict())

    def fit(self) -> dict[str, float] | None:
        """Train until config.max_steps. Returns the last validation metrics (None if none ran)."""
        config = self.config
        loader_generator = torch.Generator().manual_seed(config.seed)  # keeps the global RNG untouched
        progress = tqdm(total=config.max_steps, initial=self.step, disable=not self.context.is_main,
                        desc="train", dynamic_ncols=True)
        last_metrics = None
        while self.step < config.max_steps:
            epoch, batch_in_epoch = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(batch_in_epoch * self.per_rank_batch)
            self.train_set.set_epoch(epoch)
            loader = DataLoader(self.train_set, batch_size=self.per_rank_batch, sampler=self.sampler,
                                num_workers=config.data.num_workers, collate_fn=collate_samples, drop_last=True,
                                generator=loader_generator, pin_memory=self.device.type == "cuda")
            for batch in loader:
                record = self.train_on_batch(batch)
                progress.update(1)
                progress.set_postfix(loss=f"{record['loss']:.4f}")
                if self.step % config.log_every == 0 or self.step == config.max_steps:
                    self._log("train", record)
                if self.step % config.val_every == 0 or self.step == config.max_steps:
                    last_metrics = self._validate_and_keep_best()
                    progress.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_metrics.items()))
                if self.step % config.checkpoint_every == 0 or self.step == config.max_steps:
                    self._save()
                if self.step >= config.max_steps:
                    break
        progress.close()
        if self.skipped_samples or self.skipped_steps:
            LOG.warning("bad samples replaced: %d; optimiser steps skipped: %d", self.skipped_samples,
                        self.skipped_steps)
        if self.context.is_main:
            self.writer.flush()
            plot_training_curves(self.run_dir / "train.jsonl", self.run_dir / "val.jsonl",
                                 self.run_dir / "curves.png")
        return last_metrics

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
