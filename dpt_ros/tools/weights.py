"""`dpt-ros-weights list|download|verify`: the official weight files of each preset: where they come from,
fetching them (resumable, SHA-256 verified), and whether the files you have are right."""

from __future__ import annotations

import sys
from pathlib import Path

from dpt_ros.model.download import DOWNLOAD_COMMAND, DownloadError, ExpectedDigest, download_file, sha256_of, source_url
from dpt_ros.model.presets import PRESETS, Preset, default_weights_path
from dpt_ros.tools import cli

DEFAULT_MODELS_DIR = Path("models")


def verify_file(preset: Preset, path: Path, load: bool) -> tuple[bool, str]:
    """(ok, one-line verdict) for one preset's file: present, SHA-256 matches the published prefix, and loads
    into its network (when `load`, or always where no hash is published, as for Depth Anything V2)."""
    if not path.is_file():
        return False, f"MISSING  {path} (run `{DOWNLOAD_COMMAND} {preset.name}`, or download {preset.url})"
    digest = sha256_of(path)
    problem = ExpectedDigest.of_preset(preset).mismatch(digest)
    if problem:
        return False, f"BAD HASH {path}: {problem}"
    # Without a published hash only loading the file into its network can tell a right file from a wrong one.
    if load or not (preset.sha256 or preset.sha256_prefix):
        from dpt_ros.model.checkpoint import WeightsError
        from dpt_ros.model.dpt import build_model

        try:
            build_model(preset, weights=path)
        except WeightsError as error:
            return False, f"BAD FILE {error}"
    return True, f"OK       {path} sha256 {digest}"


def download(presets: list[Preset], models_dir: Path, url: str | None, mirror: str | None, progress: bool) -> None:
    """Fetch each preset's file into models_dir (see dpt_ros.model.download); prints one line per file.
    Raises DownloadError at the first failure."""
    for preset in presets:
        source = source_url(preset, url, mirror)
        destination = models_dir / preset.weights_file
        if progress:
            print(f"{preset.name}: {source} -> {destination}", flush=True)
        result = download_file(source, destination, ExpectedDigest.of_preset(preset), progress=progress)
        if result.reused:
            how = "already present"
        elif result.resumed_from:
            how = f"resumed at {result.resumed_from} bytes, fetched {result.fetched}"
        else:
            how = f"fetched {result.fetched} bytes" + (" (replaced a file with the wrong hash)" if result.replaced else "")
        checked = {
            "sha256": "full SHA-256 verified",
            "prefix": f"SHA-256 prefix {preset.sha256_prefix} verified; record the full digest in the preset",
            "none": "no digest recorded for this preset: NOT verified; record the digest in the preset",
        }[result.verification]
        print(f"{preset.name:18s} OK {result.path} ({how}) sha256 {result.sha256} ({checked})")


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-weights", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="presets, their weight files, download URLs and licences, SHA-256 prefixes")
    fetch = sub.add_parser("download", help="fetch weight files into the models directory (resumable, verified)")
    fetch.add_argument("presets", nargs="*", help="presets to fetch")
    fetch.add_argument("--all", action="store_true", help="fetch every preset's file")
    origin = fetch.add_mutually_exclusive_group()
    origin.add_argument("--url", help="fetch the (single) preset's file from this URL instead of the official one")
    origin.add_argument("--mirror", metavar="DIR_OR_URL",
                        help="a folder or base URL holding the files under their official names (offline mirrors)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    verify = sub.add_parser("verify", help="check the files present in the models directory")
    verify.add_argument("presets", nargs="*", help="presets to check (default: every preset whose file is present)")
    verify.add_argument("--load", action="store_true", help="also load each file into its network")
    for command in sub.choices.values():
        command.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    args = parser.parse_args(argv)

    if args.command == "list":
        for preset in PRESETS.values():
            present = "present" if default_weights_path(preset, args.models_dir).is_file() else "absent"
            print(
                f"{preset.name:39s} {preset.output_kind:23s} {preset.weights_file:43s} {present:8s} "
                f"{preset.licence:13s} {preset.url}"
            )
        return 0

    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        print(f"unknown preset(s): {', '.join(unknown)}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2

    if args.command == "download":
        if args.all == bool(args.presets):
            print("dpt-ros-weights download: name one or more presets, or --all", file=sys.stderr)
            return 2
        chosen = list(PRESETS.values()) if args.all else [PRESETS[n] for n in dict.fromkeys(args.presets)]
        if args.url and len(chosen) != 1:
            print("dpt-ros-weights download: --url needs exactly one preset (use --mirror for several)", file=sys.stderr)
            return 2
        try:
            download(chosen, args.models_dir, args.url, args.mirror, progress=not args.quiet)
        except (DownloadError, OSError) as error:
            print(f"dpt-ros-weights download: {error}", file=sys.stderr)
            return 2
        return 0

    chosen = [PRESETS[n] for n in args.presets] or [
        p for p in PRESETS.values() if default_weights_path(p, args.models_dir).is_file()
    ]
    if not chosen:
        print(f"no weight files found in {args.models_dir}; run `{DOWNLOAD_COMMAND} PRESET` (presets: `dpt-ros-weights list`)")
        return 1
    all_ok = True
    for preset in chosen:
        ok, verdict = verify_file(preset, default_weights_path(preset, args.models_dir), args.load)
        all_ok &= ok
        print(f"{preset.name:39s} {verdict}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
