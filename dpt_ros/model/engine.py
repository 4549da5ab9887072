"""The one inference engine used by the ROS node, the bag evaluator, the trainer's evaluation and the
benchmarks: image in, the network's output at the image's resolution out.

Two preprocessing paths share one rule (`network_input_size`):
  - host (default on CPU): OpenCV bicubic on float RGB, exactly the reference's numbers;
  - device (default on CUDA): the uint8 image is uploaded once through a pinned buffer and resized +
    normalised on the GPU with torch's bicubic kernel (same a = -0.75 cubic as OpenCV; agrees to ~1e-3).
On CUDA the network can run channels-last, in fp16/bf16 autocast, compiled, and replayed from a CUDA
graph captured per input shape. Outputs are resized on the device and copied to the host once into
reused pinned buffers; everything after that (depth stage, point cloud) is the pipeline's, on the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dpt_ros.model.checkpoint import WeightsError, missing_weights_message
from dpt_ros.model.dpt import build_model
from dpt_ros.model.preprocess import preprocess, preset_input_size, validate_rgb_image
from dpt_ros.model.presets import Preset, get_preset

LOG = logging.getLogger(__name__)

# `with clock(stage_name): ...` records how long the block took (see pipeline.stats.StageClock)
StageTimer = Callable[[str], AbstractContextManager[object]]

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# `Preset.output_resize` -> F.interpolate arguments.
OUTPUT_RESIZE: dict[str, dict[str, object]] = {
    "bicubic": {"mode": "bicubic", "align_corners": False},
    "bilinear_align_corners": {"mode": "bilinear", "align_corners": True},
}


def resolve_device(device: str) -> torch.device:
    """'auto' -> the first CUDA device if there is one, else CPU; 'cpu' / 'cuda:N' validated."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda:N'") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif resolved.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda:N'")
    return resolved


def _untimed(stage: str) -> AbstractContextManager[object]:
    return nullcontext()


def _log_graph_capture(shape: tuple[int, ...], captured_before: int) -> None:
    LOG.info("capturing a CUDA graph for input shape %s (%d captured before)", shape, captured_before)


class InferenceEngine:
    """A DPT or Depth Anything V2 preset on a device at a precision.

    infer(rgb) takes an (H, W, 3) uint8 RGB image and returns float32 at the image's resolution,
    resized back as the preset's official script does:
      - (H, W) relative inverse depth (`relative_inverse_depth` presets) or metres (`metric_depth`);
      - (C, H, W) class logits for segmentation presets.
    infer_batch(images) runs same-sized images (e.g. several cameras) in one forward pass.
    Prompt presets (`Preset.needs_prompt`) take one metric depth prompt per image: infer_batch(images,
    prompts=[(h, w) float32 metres or None]); metres with a prompt, a unitless (0, 1) depth for a None.
    Called without `prompts` they raise rather than hand out unitless numbers as metres.
    Without weights the engine refuses to start unless `allow_random_weights` is set, in which case
    it runs with random weights and says so (`random_weights`).
    """

    def __init__(
        self,
        preset: str | Preset,
        weights: str | Path | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        allow_random_weights: bool = False,
        input_size: tuple[int, int] | None = None,
        preprocess_on_device: bool | None = None,
        channels_last: bool | None = None,
        compile_model: bool = False,
        cuda_graphs: bool = False,
        on_graph_capture: Callable[[tuple[int, ...], int], None] | None = None,
    ) -> None:
        self.preset = get_preset(preset)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.device = resolve_device(device)
        on_cuda = self.device.type == "cuda"
        if cuda_graphs and self.preset.needs_prompt:
            raise ValueError(f"cuda_graphs does not support prompt presets ({self.preset.name}): turn it off")
        if cuda_graphs and not on_cuda:
            raise ValueError(
                f"cuda_graphs needs a CUDA device, but device {device!r} is {self.device}: turn cuda_graphs off "
                "or run on a machine with a CUDA GPU"
            )
        self.input_size = input_size
        self.preprocess_on_device = on_cuda if preprocess_on_device is None else preprocess_on_device
        self.cuda_graphs = cuda_graphs
        # Told (input shape, graphs captured before) at each capture, e.g. to log it where a node's logs go.
        self._on_graph_capture = on_graph_capture or _log_graph_capture
        weights_path = Path(weights).expanduser() if weights is not None else None
        have_weights = weights_path is not None and weights_path.exists()
        if not have_weights and not allow_random_weights:
            raise WeightsError(missing_weights_message(self.preset, weights_path))
        self.random_weights = not have_weights
        if self.random_weights:
            LOG.warning(
                "RUNNING DPT '%s' WITH RANDOM WEIGHTS: outputs are meaningless (%s)",
                self.preset.name, missing_weights_message(self.preset, weights_path),
            )
        model = build_model(self.preset, weights_path if have_weights else None).to(self.device)
        self.channels_last = on_cuda if channels_last is None else channels_last
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = torch.compile(model) if compile_model else model
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self._host_buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    # ----------------------------------------------------------------------------------- stages
    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return preset_input_size(height, width, self.preset, self.input_size)

    def prepare_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-sized (H, W, 3) uint8 RGB images -> (N, 3, h, w) normalised network input on the device."""
        if not images:
            raise ValueError("a batch needs at least one image")
        images = [validate_rgb_image(image) for image in images]
        shape = images[0].shape
        if any(image.shape != shape for image in images):
            raise ValueError(f"a batch needs images of one size, got {sorted({i.shape for i in images})}")
        if not self.preprocess_on_device:
            return torch.cat([preprocess(i, self.preset, self.input_size) for i in images]).to(self.device)
        staging = self._host_buffer("input", (len(images), *shape), torch.uint8)
        for slot, image in zip(staging, images):
            slot.copy_(torch.from_numpy(image))
        uint8 = staging.to(self.device, non_blocking=True)
        rgb = uint8.permute(0, 3, 1, 2).float().div_(255.0)
        resized = F.interpolate(rgb, size=self.network_size(*shape[:2]), mode="bicubic", align_corners=False)
        mean, std = (torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in self.preset.mean_std)
        return resized.sub_(mean).div_(std)

    def prepare_prompts(self, prompts: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-sized (h, w) metre prompts, finite and non-empty (densified) -> (N, 1, h, w) float32 on the device."""
        arrays = [np.asarray(prompt, dtype=np.float32) for prompt in prompts]
        shape = arrays[0].shape
        if len(shape) != 2 or 0 in shape or any(a.shape != shape for a in arrays):
            raise ValueError(f"prompts must be non-empty (h, w) arrays of one size, got {[a.shape for a in arrays]}")
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("a prompt holds NaN or inf: densify it first (dpt_ros.prompt.densify)")
        return torch.from_numpy(np.stack(arrays)[:, None]).to(self.device)

    def forward(self, batch: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """The network's raw output for a prepared batch (float32, on the device), with a prepared prompt for
        prompt presets. With CUDA graphs the result lives in the graph's static buffer: consume it before the
        next call."""
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.cuda_graphs:
            return self._replay_graph(batch)
        with torch.inference_mode(), self._autocast():
            out = self._forward(batch) if prompt is None else self._forward(batch, prompt)
            return out.float()

    def resize_to_image(self, out: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(N, h, w) or (N, C, h, w) network output -> the image's (height, width), as the preset's reference
        script does it (`Preset.output_resize`)."""
        squeeze = out.ndim == 3
        resized = F.interpolate(
            out[:, None] if squeeze else out, size=(height, width), **OUTPUT_RESIZE[self.preset.output_resize]
        )
        return resized[:, 0] if squeeze else resized

    # ----------------------------------------------------------------------------------- public
    @torch.inference_mode()
    def infer(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> network output at (H, W): see the class docstring."""
        return self.infer_batch([rgb])[0]

    @torch.inference_mode()
    def infer_batch(
        self,
        images: Sequence[np.ndarray],
        prompts: Sequence[np.ndarray | None] | None = None,
        clock: StageTimer | None = None,
    ) -> list[np.ndarray]:
        """Same-sized images in one forward pass; one host array per image (see `infer`). prompts: prompt
        presets only, one per image; images with and without one run as two passes.

        clock: times the stages "prepare", "forward", "post" (resize to the image) and "copy" (to the host)
        when given (`with clock(name): ...`, e.g. pipeline.stats.StageClock; the benchmark passes one).
        """
        if prompts is None and self.preset.needs_prompt:
            raise ValueError(
                f"{self.preset.name} takes a metric depth prompt per image: pass prompts=[...] (None for an image "
                "without one, whose output is then unitless, not metres)"
            )
        if prompts is not None and not self.preset.needs_prompt:
            raise ValueError(f"{self.preset.name} takes no depth prompt")
        if prompts is not None and len(prompts) != len(images):
            raise ValueError(f"{len(images)} images need {len(images)} prompts (None for none), got {len(prompts)}")
        if prompts is None or all(p is None for p in prompts) or all(p is not None for p in prompts):
            given = None if prompts is None or prompts[0] is None else self.prepare_prompts(prompts)
            return self._infer_pass(images, given, clock)
        results: list[np.ndarray | None] = [None] * len(images)
        for with_prompt in (True, False):
            indices = [i for i, p in enumerate(prompts) if (p is not None) == with_prompt]
            given = self.prepare_prompts([prompts[i] for i in indices]) if with_prompt else None
            for i, out in zip(indices, self._infer_pass([images[i] for i in indices], given, clock)):
                results[i] = out
        return results

    def _infer_pass(
        self, images: Sequence[np.ndarray], prompt: torch.Tensor | None, clock: StageTimer | None = None
    ) -> list[np.ndarray]:
        stage = clock if clock is not None else _untimed
        with stage("prepare"):
            batch = self.prepare_batch(images)  # validates the images
        height, width = images[0].shape[:2]
        with stage("forward"):
            out = self.forward(batch, prompt)
        with stage("post"):
            out = self.resize_to_image(out, height, width)
        with stage("copy"):
            host = self.to_host("output", out)
        return [host[i] for i in range(len(images))]

    # ----------------------------------------------------------------------------------- internals
    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _host_buffer(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A reused (pinned, on CUDA machines) host tensor per role and shape: no per-frame allocation."""
        key = (role, shape)
        buffer = self._host_buffers.get(key)
        if buffer is None or buffer.dtype != dtype:
            buffer = torch.empty(shape, dtype=dtype, pin_memory=self.device.type == "cuda")
            self._host_buffers[key] = buffer
        return buffer

    def to_host(self, role: str, tensor: torch.Tensor, copy: bool = True) -> np.ndarray:
        """One device -> host copy through a pinned buffer reused per role.

        copy=False returns a view of that buffer, valid until the next call for the same role (for a
        caller that serialises the result at once); copy=True returns an array the caller owns.
        """
        if self.device.type == "cpu":
            return tensor.float().numpy()
        host = self._host_buffer(role, tuple(tensor.shape), torch.float32)
        host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host.numpy().copy() if copy else host.numpy()

    def _replay_graph(self, batch: torch.Tensor) -> torch.Tensor:
        key = tuple(batch.shape)
        if key not in self._graphs:
            self._on_graph_capture(key, len(self._graphs))
            static_input = batch.clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.inference_mode(), self._autocast():
                for _ in range(3):  # warm-up: kernels selected and workspaces allocated outside the graph
                    self._forward(static_input)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode(), self._autocast():
                static_output = self._forward(static_input).float()
            self._graphs[key] = (graph, static_input, static_output)
        graph, static_input, static_output = self._graphs[key]
        static_input.copy_(batch)
        graph.replay()
        return static_output
