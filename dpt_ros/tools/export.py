"""`dpt-ros-export`: a preset as ONNX with dynamic height/width (multiples of 32), checked against PyTorch.

The exported graph takes the normalised (N, 3, H, W) batch `dpt_ros.preprocess` makes and returns
what `build_model(preset)` returns (inverse depth / metres (N, H, W) or logits (N, 150, H, W)).
For Jetson and other TensorRT targets, build an engine from the ONNX file with
`trtexec --onnx=model.onnx --fp16 --minShapes=image:1x3x256x256 --optShapes=image:1x3x384x512
--maxShapes=image:1x3x736x1280 --saveEngine=model.plan`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.dpt import DPT, build_model
from dpt_ros.model.presets import PRESETS


def export_onnx(model: DPT, path: Path, sample_hw: tuple[int, int] = (384, 512), opset: int = 17) -> Path:
    """Write `model` to `path` (atomically) as ONNX with dynamic batch, height and width."""
    sample = torch.zeros(1, 3, *sample_hw)
    segmentation = model.arch.head == "segmentation"
    output_axes = {0: "batch", 2: "height", 3: "width"} if segmentation else {0: "batch", 1: "height", 2: "width"}
    temporary = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: expected
        torch.onnx.export(
            model, (sample,), str(temporary), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["output"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "output": output_axes},
        )
    temporary.replace(path)
    return path


def max_relative_difference(model: DPT, onnx_path: Path, sizes: list[tuple[int, int]],
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
    parser = argparse.ArgumentParser(prog="dpt-ros-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dpt_hybrid_midas", choices=sorted(PRESETS))
    parser.add_argument("--weights", type=Path, help="official .pt or Hugging Face directory")
    parser.add_argument("--allow-random-weights", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seeds random weights")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx path")
    parser.add_argument("--check-sizes", default="384x384,384x512", help="HxW list to verify with onnxruntime")
    args = parser.parse_args(argv)
    if args.weights is None and not args.allow_random_weights:
        print("error: give --weights (or --allow-random-weights for a structural export)", file=sys.stderr)
        return 1
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.check_sizes.split(",") if item]
    torch.manual_seed(args.seed)  # random weights: the same network for one seed
    try:
        model = build_model(args.preset, args.weights)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    export_onnx(model, args.out)
    differences = max_relative_difference(model, args.out, sizes)
    for (height, width), difference in differences.items():
        print(f"{height}x{width}: max relative difference onnxruntime vs torch = {difference:.2e}")
    print(f"wrote {args.out}")
    return 0 if all(d <= 1e-4 for d in differences.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
