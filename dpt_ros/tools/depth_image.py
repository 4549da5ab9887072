"""`dpt-ros-depth-image`: run a DPT preset on image files and write depth PNGs (no ROS needed).

For each input it writes `<stem>_depth.png` (uint16) and `<stem>_depth_colored.png`:
  - relative presets: inverse depth scaled to the full uint16 range per image (as the official
    scripts do; only the ordering is meaningful);
  - metric presets: metres * 256 with 0 = invalid (the KITTI depth PNG convention);
  - segmentation presets: `<stem>_labels.png` (uint8 class ids 0..149) instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.presets import PRESETS, resolve_weights_path
from dpt_ros.tools import cli

UINT16_MAX = 65535


def depth_png(values: np.ndarray, metric: bool) -> np.ndarray:
    """(H, W) float -> (H, W) uint16 PNG payload; see the module docstring for the encodings."""
    finite = np.isfinite(values)
    if metric:
        scaled = np.where(finite & (values > 0), np.round(values * 256.0), 0)
        return np.clip(scaled, 0, UINT16_MAX).astype(np.uint16)
    if not finite.any():
        return np.zeros(values.shape, np.uint16)
    low, high = float(values[finite].min()), float(values[finite].max())
    span = high - low if high > low else 1.0
    return np.where(finite, np.round((values - low) / span * UINT16_MAX), 0).astype(np.uint16)


def colored(values16: np.ndarray) -> np.ndarray:
    return cv2.applyColorMap((values16 >> 8).astype(np.uint8), cv2.COLORMAP_INFERNO)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-depth-image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--preset", default="dpt_hybrid_midas", choices=sorted(PRESETS))
    parser.add_argument("--weights", type=Path, help="official .pt or Hugging Face directory (default models/<file>)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--out", type=Path, default=Path("depth_output"))
    parser.add_argument("--allow-random-weights", action="store_true", help="run without weights (demo only)")
    parser.add_argument("--seed", type=int, default=0, help="seeds random weights")
    parser.add_argument("--architecture-overrides", type=json.loads, default={},
                        help='JSON of architecture fields for smoke runs, e.g. {"embed_dim": 64, "depth": 4}')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    import torch

    from dpt_ros.model.engine import InferenceEngine

    torch.manual_seed(args.seed)  # random weights: the same network for one seed
    preset = PRESETS[args.preset]
    if args.architecture_overrides:
        preset = preset.with_architecture(**args.architecture_overrides)
    weights = resolve_weights_path(args.weights, preset)
    try:
        engine = InferenceEngine(preset, weights, args.device, args.precision, args.allow_random_weights)
    except (WeightsError, ValueError) as error:
        return cli.user_error(parser.prog, error)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in tqdm(args.images, desc=f"{preset.name} on {engine.device}", unit="image"):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"error: cannot read image {path}", file=sys.stderr)
            failures += 1
            continue
        out = engine.infer(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if preset.is_segmentation:
            _write_png(args.out / f"{path.stem}_labels.png", out.argmax(0).astype(np.uint8))
            continue
        encoded = depth_png(out, preset.is_metric)
        _write_png(args.out / f"{path.stem}_depth.png", encoded)
        _write_png(args.out / f"{path.stem}_depth_colored.png", colored(encoded))
    print(f"wrote {len(args.images) - failures} result(s) to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
