"""Where the checkout is, and the environment a test's subprocess needs to import this checkout."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_ROOT = REPO_ROOT / "training"
# ../shared/realdata from the checkout; DPT_ROS_REAL_DATA points elsewhere (e.g. from a git worktree)
REAL_DATA = Path(os.environ.get("DPT_ROS_REAL_DATA", REPO_ROOT.parent / "shared" / "realdata"))


def subprocess_env(**extra: str) -> dict[str, str]:
    """os.environ with this checkout's dpt_ros and dpt_train first on PYTHONPATH (a worktree's code,
    not whichever copy is installed), plus `extra` variables."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), str(TRAINING_ROOT), env.get("PYTHONPATH")]))
    return env
