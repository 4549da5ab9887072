"""`import dpt_ros` and every core module must work on a machine without ROS (rclpy blocked)."""

import pkgutil
import subprocess
import sys

import dpt_ros.core


def test_core_modules_import_with_rclpy_blocked():
    modules = [m.name for m in pkgutil.walk_packages(dpt_ros.core.__path__, prefix="dpt_ros.core.")]
    assert len(modules) >= 6
    script = (
        "import sys, importlib\n"
        "sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError\n"
        "import dpt_ros\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'rclpy' not in {k for k, v in sys.modules.items() if v is not None}\n"
        "print('ok', len(" + repr(modules) + "))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_importing_the_package_does_not_import_torch_or_rclpy():
    script = "import sys, dpt_ros; assert 'rclpy' not in sys.modules and 'torch' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
