"""`dpt-ros-weights list|verify`: which official weight files a preset needs and whether yours are right."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from dpt_ros.model.presets import PRESETS, Preset

DEFAULT_MODELS_DIR = Path("models")


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(preset: Preset, path: Path, load: bool) -> tuple[bool, str]:
    """(ok, one-line verdict) for one preset's file: present, SHA-256 matches the published prefix, and loads
    into its network (when `load`, or always where no hash is published, as for Depth Anything V2)."""
    if not path.is_file():
        return False, f"MISSING  {path} (download {preset.url})"
    digest = sha256_of(path)
    if preset.sha256_prefix is not None and not digest.startswith(preset.sha256_prefix):
        return False, f"BAD HASH {path}: sha256 {digest} does not start with {preset.sha256_prefix}"
    # Without a published hash only loading the file into its network can tell a right file from a wrong one.
    if load or preset.sha256_prefix is None:
        from dpt_ros.model.checkpoint import WeightsError
        from dpt_ros.model.dpt import build_model

        try:
            build_model(preset, weights=path)
        except WeightsError as error:
            return False, f"BAD FILE {error}"
    return True, f"OK       {path} sha256 {digest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpt-ros-weights", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="presets, their weight files, presence, licences and download URLs")
    verify = sub.add_parser("verify", help="check the files present in the models directory")
    verify.add_argument("presets", nargs="*", help="presets to check (default: every preset whose file is present)")
    verify.add_argument("--load", action="store_true", help="also load each file into its network")
    for command in sub.choices.values():
        command.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    args = parser.parse_args(argv)

    if args.command == "list":
        for preset in PRESETS.values():
            present = "present" if (args.models_dir / preset.weights_file).is_file() else "absent"
            print(
                f"{preset.name:39s} {preset.output_kind:23s} {preset.weights_file:43s} {present:8s} "
                f"{preset.licence:13s} {preset.url}"
            )
        return 0

    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        print(f"unknown preset(s): {', '.join(unknown)}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    chosen = [PRESETS[n] for n in args.presets] or [
        p for p in PRESETS.values() if (args.models_dir / p.weights_file).is_file()
    ]
    if not chosen:
        print(f"no weight files found in {args.models_dir}; run `dpt-ros-weights list` for the download URLs")
        return 1
    all_ok = True
    for preset in chosen:
        ok, verdict = verify_file(preset, args.models_dir / preset.weights_file, args.load)
        all_ok &= ok
        print(f"{preset.name:39s} {verdict}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
