"""Where the checkout is, and the environment a test's subprocess needs to import this checkout."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_ROOT = REPO_ROOT / "training"
# Real recordings (see their README.md): next to the checkout, or wherever DPT_ROS_REAL_DATA points (a git
# worktree elsewhere, a CI cache).
REAL_DATA = Path(os.environ.get("DPT_ROS_REAL_DATA") or REPO_ROOT.parent / "shared" / "realdata")
# Multi-MB images drop with Fast DDS defaults; the shipped profile gives them a 64 MB shared-memory segment.
FASTDDS_PROFILE = REPO_ROOT / "config" / "fastdds_shm.xml"


def set_ros_test_environment(environ: "os._Environ[str] | dict[str, str]", domain_id: int) -> None:
    """What every rclpy context of a test run needs, set before the first one exists (conftest.py calls this):
    Fast DDS discovery over loopback only (ROS_LOCALHOST_ONLY is ignored by Kilted), a domain of this run's own
    unless one is given (parallel runs must not see each other's nodes), and the shipped Fast DDS profile (the
    tests' multi-MB messages need it, whatever profile the shell has). Subprocesses inherit all three through
    subprocess_env()."""
    environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    environ.setdefault("ROS_DOMAIN_ID", str(domain_id))
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)


def subprocess_env(**extra: str) -> dict[str, str]:
    """os.environ with this checkout's dpt_ros and dpt_train first on PYTHONPATH (a worktree's code,
    not whichever copy is installed), plus `extra` variables."""
    env = dict(os.environ, **extra)
    env.setdefault("PYTHONUNBUFFERED", "1")  # a child's log lines arrive as they are written
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), str(TRAINING_ROOT), env.get("PYTHONPATH")]))
    return env
