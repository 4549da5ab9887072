"""The layer rule of docs/architecture.md, read from every module's imports (AST, TYPE_CHECKING and
function-level imports included), and the ROS-free promise checked by importing with rclpy blocked."""

import ast
import functools
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from support.environment import REPO_ROOT, TRAINING_ROOT

PACKAGE_ROOT = REPO_ROOT / "dpt_ros"

# Higher layers may import lower ones and their own layer; never a higher one.
LAYER = {
    "errors": 0,
    "model": 1,
    "geometry": 1,
    "sim": 1,
    "alignment": 2,
    "segmentation": 2,
    # Depth prompts sit beside alignment: both turn sensor depth into what a network output needs.
    "prompt": 2,
    "pipeline": 3,
    "eval": 3,
    "app": 4,
    "bags": 5,
    "ros": 6,
    "tools": 6,
}
# Simulated scenes are test and tool material: no product code path may depend on them.
SIM_IMPORTERS = {"tools", "sim"}
# Only the ROS shell and the tools (replay, demo) talk to rclpy.
RCLPY_IMPORTERS = {"ros", "tools"}
MAX_MODULES_PER_PACKAGE = 15


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module `path` imports, wherever the import statement sits."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@functools.cache
def _product_modules() -> dict[str, set[str]]:
    """Every dpt_ros module -> the absolute names it imports."""
    return {
        _module_name(path, REPO_ROOT): _imports(path, _module_name(path, REPO_ROOT))
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
    }


def _layer_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "dpt_ros" else None


def test_every_subpackage_has_a_layer():
    packages = {p.name for p in PACKAGE_ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE_ROOT.glob("*.py") if p.stem != "__init__"}
    assert packages | modules == set(LAYER), "add the new package to LAYER and to docs/architecture.md"


def test_each_package_imports_only_its_layer_or_below():
    violations = []
    for module, imported in _product_modules().items():
        own = _layer_package(module)
        if own is None:  # dpt_ros/__init__.py names modules in strings only (lazy public API)
            continue
        for name in imported:
            target = _layer_package(name)
            if target is None or target not in LAYER or target == own:
                continue
            if LAYER[target] > LAYER[own]:
                violations.append(f"{module} ({own}, layer {LAYER[own]}) imports {name} (layer {LAYER[target]})")
            if target == "sim" and own not in SIM_IMPORTERS:
                violations.append(f"{module} imports the simulator {name}")
    assert not violations, "\n".join(sorted(violations))


def test_no_import_cycle_between_modules():
    modules = _product_modules()
    graph = {module: {name for name in imported if name in modules} for module, imported in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt == node or nxt == "dpt_ros":
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


def test_ros_package_never_imports_the_training_package():
    offenders = [m for m, imported in _product_modules().items() if any(n.split(".")[0] == "dpt_train" for n in imported)]
    assert not offenders
    text_hits = [str(p) for p in PACKAGE_ROOT.rglob("*.py") if "dpt_train" in p.read_text()]
    assert not text_hits, f"dpt_train named in {text_hits}"


def test_only_the_ros_shell_and_tools_import_rclpy():
    offenders = [
        module
        for module, imported in _product_modules().items()
        if _layer_package(module) not in RCLPY_IMPORTERS and any(n.split(".")[0] == "rclpy" for n in imported)
    ]
    assert not offenders


def test_no_package_folder_is_a_flat_heap():
    counts: dict[Path, int] = defaultdict(int)
    for path in PACKAGE_ROOT.rglob("*.py"):
        if path.name != "__init__.py":
            counts[path.parent] += 1
    crowded = {str(folder.relative_to(REPO_ROOT)): n for folder, n in counts.items() if n > MAX_MODULES_PER_PACKAGE}
    assert not crowded


def test_training_depends_on_the_ros_package_not_the_other_way():
    setup = (REPO_ROOT / "setup.py").read_text()
    assert "dpt_train" not in setup
    assert (TRAINING_ROOT / "pyproject.toml").exists()


@pytest.mark.slow
@pytest.mark.slow
def test_everything_below_the_ros_shell_imports_with_rclpy_blocked():
    modules = sorted(
        m for m in _product_modules() if _layer_package(m) is not None and _layer_package(m) not in RCLPY_IMPORTERS
    )
    assert len(modules) >= 30
    script = (
        "import sys, importlib\n"
        "sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError\n"
        "import dpt_ros\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'rclpy' not in {k for k, v in sys.modules.items() if v is not None}\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_importing_the_package_does_not_import_torch_or_rclpy():
    script = "import sys, dpt_ros; assert 'rclpy' not in sys.modules and 'torch' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
