"""`dpt-ros-export`: a preset as ONNX with dynamic height/width, checked against PyTorch.

Heights and widths must be multiples of the preset's stride: 32 for DPT, 14 for Depth Anything V2.

The exported graph takes the normalised (N, 3, H, W) batch `dpt_ros.preprocess` makes and returns
what `build_model(preset)` returns (inverse depth / metres (N, H, W) or logits (N, 150, H, W)).
For Jetson and other TensorRT targets, build an engine from the ONNX file with
`trtexec --onnx=model.onnx --fp16 --minShapes=image:1x3x256x256 --optShapes=image:1x3x384x512
--maxShapes=image:1x3x736x1280 --saveEngine=model.plan`.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.dpt import DepthNetwork, build_model
from dpt_ros.model.presets import PRESETS
from dpt_ros.tools import cli


def default_sizes(stride: int) -> list[tuple[int, int]]:
    """Square and 3:4 check sizes in multiples of the stride: 384x384 and 384x512 for DPT, 168x168 and
    168x224 for Depth Anything V2."""
    return [(12 * stride, 12 * stride), (12 * stride, 16 * stride)]


def export_onnx(
    model: DepthNetwork, path: Path, sample_hw: tuple[int, int] | None = None, opset: int = 17
) -> Path:
    """Write `model` to `path` (atomically) as ONNX with dynamic batch, height and width.

    sample_hw: the traced example's size (default: the 3:4 size of `default_sizes`)."""
    sample = torch.zeros(1, 3, *(sample_hw or default_sizes(model.arch.stride)[1]))
    segmentation = model.arch.head == "segmentation"
    output_axes = {0: "batch", 2: "height", 3: "width"} if segmentation else {0: "batch", 1: "height", 2: "width"}
    temporary = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: expected
        # dynamo=False is chosen (the traced exporter, with dynamic_axes): torch's notices that it is legacy are not news
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (sample,), str(temporary), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["output"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "output": output_axes},
        )
    temporary.replace(path)
    return path


def max_relative_difference(model: DepthNetwork, onnx_path: Path, sizes: list[tuple[int, int]],
                            seed: int = 0) -> dict[tuple[int, int], float]:
    """max |onnxruntime - torch| / max |torch| per input size, on seeded random inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for height, width in sizes:
        x = torch.randn(1, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        result[(height, width)] = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dpt_hybrid_midas", choices=sorted(PRESETS))
    parser.add_argument("--weights", type=Path, help="official .pt or Hugging Face directory")
    parser.add_argument("--allow-random-weights", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seeds random weights")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx path")
    parser.add_argument("--check-sizes", type=cli.image_sizes, help="HxW list to verify with onnxruntime (default: a "
                        "square and a 3:4 size in multiples of the preset's stride)")
    parser.add_argument("--architecture-overrides", type=json.loads, default={},
                        help='JSON of architecture fields for smoke runs, e.g. {"embed_dim": 64, "depth": 4}')
    args = parser.parse_args(argv)
    if args.weights is None and not args.allow_random_weights:
        parser.error("give --weights (or --allow-random-weights for a structural export)")
    preset = PRESETS[args.preset]
    torch.manual_seed(args.seed)  # random weights: the same network for one seed
    try:
        if args.architecture_overrides:
            preset = preset.with_architecture(**args.architecture_overrides)
        sizes = args.check_sizes or default_sizes(preset.architecture.stride)
        model = build_model(preset, args.weights)
        export_onnx(model, args.out)
    except (WeightsError, OSError, ValueError, TypeError) as error:  # TypeError: an unknown architecture field
        return cli.user_error(parser.prog, error)
    differences = max_relative_difference(model, args.out, sizes)
    for (height, width), difference in differences.items():
        print(f"{height}x{width}: max relative difference onnxruntime vs torch = {difference:.2e}")
    print(f"wrote {args.out}")
    return 0 if all(d <= 1e-4 for d in differences.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
