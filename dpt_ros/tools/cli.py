"""What every console script shares: a user error ends in ONE line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys

USER_ERROR_STATUS = 2


def one_line(error: BaseException | str) -> str:
    """The error's message on one line (multi-line messages are joined with '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def user_error(prog: str, error: BaseException | str) -> int:
    """Print `prog: error: <message>` on stderr; returns the exit status of a user error (2)."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR_STATUS


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (bad value, missing argument) are one line, not usage + error; exit status 2.
    Subcommand parsers made with add_subparsers() are of this class too."""

    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's error never returns
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def image_size(text: str) -> tuple[int, int]:
    """argparse type for an image size written HxW, e.g. 480x640 -> (480, 640)."""
    try:
        height, width = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an image size HxW such as 480x640") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: height and width must be positive")
    return height, width


def image_sizes(text: str) -> list[tuple[int, int]]:
    """argparse type for a comma-separated list of HxW sizes, e.g. 384x384,384x512."""
    return [image_size(item) for item in text.split(",") if item]
