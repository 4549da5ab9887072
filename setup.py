"""dpt_ros: ament_python package (colcon) that also installs with plain `pip install -e .`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dpt_ros"

# Versions that work together on a CPU-only x86_64 machine as well as on CUDA machines
# (the torch/torchvision pair must match, or torchvision fails to import its operators).
RUNTIME_REQUIREMENTS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "timm==1.0.31",
    "numpy==2.2.6",
    "opencv-python-headless==4.12.0.88",
    "PyYAML==6.0.4",
    "safetensors==0.8.0",
    "tqdm==4.70.1",
    "matplotlib==3.11.2",
    "rosbags==0.11.9",
    "scipy==1.17.1",  # the evaluator's LiDAR-only baselines (nearest-neighbour fill)
]

# ROS 2 Kilted from PyPI, for machines without a system ROS install (tests, CI, laptops).
# On a robot, the system's ROS provides these; do not install this extra there.
ROS_FROM_PYPI = [
    "ros-rclpy[fastrtps]==9.1.2",
    "ros-sensor-msgs==5.5.1",
    "ros-std-msgs==5.5.1",
    "ros-geometry-msgs==5.5.1",
    "ros-diagnostic-msgs==5.5.1",
]

EXPORT_REQUIREMENTS = ["onnx==1.23.2", "onnxruntime==1.32.0"]

TEST_REQUIREMENTS = (
    ROS_FROM_PYPI
    + EXPORT_REQUIREMENTS
    + [
        "transformers==5.23.0",
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "ruff==0.17.6",
    ]
)

setup(
    name=PACKAGE,
    version="0.1.0",
    # dpt_ros/data holds data files only (no __init__.py): it is listed as a package so that setuptools
    # installs it (and says nothing about an importable folder it would otherwise leave out).
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]) + [PACKAGE + ".data"],
    package_data={PACKAGE + ".data": ["*"]},
    # The packages sit at the project root: editable installs then put the root on sys.path (a plain .pth
    # file, the same for pip and colcon --symlink-install) instead of an import hook that warns on every install.
    package_dir={"": "."},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*")),
        ("share/" + PACKAGE + "/models", ["models/README.md"]),
    ],
    python_requires=">=3.10",
    install_requires=RUNTIME_REQUIREMENTS,
    extras_require={
        "ros": ROS_FROM_PYPI,
        "export": EXPORT_REQUIREMENTS,
        "test": TEST_REQUIREMENTS,
    },
    zip_safe=True,
    maintainer="dpt_ros maintainers",
    maintainer_email="maintainers@dpt-ros.dev",
    description="Metric depth, point clouds and semantic masks from DPT, aligned to LiDAR, for ROS 2.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "dpt-ros-weights = dpt_ros.tools.weights:main",
            "dpt-ros-depth-image = dpt_ros.tools.depth_image:main",
            "dpt-ros-bench = dpt_ros.tools.bench:main",
            "dpt-ros-export = dpt_ros.tools.export:main",
            "depth_node = dpt_ros.ros.depth_node:main",
            "segmentation_node = dpt_ros.ros.segmentation_node:main",
            "dpt-ros-make-sample = dpt_ros.tools.make_sample_bag:main",
            "dpt-ros-eval = dpt_ros.tools.evaluate_bag:main",
            "dpt-ros-replay = dpt_ros.tools.replay_bag:main",
            "dpt-ros-demo = dpt_ros.tools.demo:main",
        ],
    },
)
