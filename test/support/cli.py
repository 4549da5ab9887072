"""Driving a console script's main() in-process and checking that a user error ends it the agreed way."""

from collections.abc import Callable, Sequence

import pytest


def run_main(main: Callable[[list[str]], int], argv: Sequence[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit status, stderr) of `main(argv)`; argparse's SystemExit counts as the status it carries."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_user_error(status: int, stderr: str, *fragments: str) -> None:
    """Exit status 2 and exactly ONE visible line on stderr, naming every fragment; no traceback."""
    assert status == 2, stderr
    assert "Traceback" not in stderr, stderr
    # What a terminal shows: a progress bar that cleared itself ('\r' then spaces) leaves nothing on its line.
    lines = [line.rsplit("\r", 1)[-1] for line in stderr.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, stderr)
