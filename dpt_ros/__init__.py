"""dpt_ros: metric depth, point clouds and semantic masks from Dense Prediction Transformers.

The public API is imported lazily so that `import dpt_ros` stays cheap and never pulls in rclpy
(or torch, until a model function is used). Every name here lives in the ROS-free core.
"""

from importlib import import_module
from typing import Any

# public name -> module that defines it
_PUBLIC_API = {
    "build_model": "dpt_ros.core.model.dpt",
    "preprocess": "dpt_ros.core.preprocess",
    "get_preset": "dpt_ros.core.model.presets",
    "PRESETS": "dpt_ros.core.model.presets",
    "InferenceEngine": "dpt_ros.core.engine",
    "DepthPipeline": "dpt_ros.core.pipeline",
    "build_point_cloud": "dpt_ros.core.pointcloud",
    "DepthNodeConfig": "dpt_ros.core.node_config",
    "project_lidar": "dpt_ros.core.lidar_projection",
    "project_points": "dpt_ros.core.lidar_projection",
    "ProjectedPoints": "dpt_ros.core.lidar_projection",
    "fit_scale_shift": "dpt_ros.core.alignment",
    "fit_scale": "dpt_ros.core.alignment",
    "to_metric": "dpt_ros.core.alignment",
    "AlignmentConfig": "dpt_ros.core.alignment",
    "AlignmentResult": "dpt_ros.core.alignment",
    "TemporalAlignmentFilter": "dpt_ros.core.temporal_filter",
    "TemporalFilterConfig": "dpt_ros.core.temporal_filter",
    "FilteredAlignment": "dpt_ros.core.temporal_filter",
    "FilterState": "dpt_ros.core.temporal_filter",
    "xyz_from_cloud_buffer": "dpt_ros.core.cloud_fields",
    "load_class_table": "dpt_ros.core.segmentation",
    "labels_from_logits": "dpt_ros.core.segmentation",
    "colorize_labels": "dpt_ros.core.segmentation",
    "confusion_matrix": "dpt_ros.core.segmentation",
    "pixel_accuracy": "dpt_ros.core.segmentation",
    "mean_iou": "dpt_ros.core.segmentation",
    "TestTimeAugmentation": "dpt_ros.core.segmentation",
    "resize_labels": "dpt_ros.core.segmentation",
    "labels_from_ade20k_annotation": "dpt_ros.core.segmentation",
    "augmented_class_probabilities": "dpt_ros.core.segmentation_pipeline",
}

__all__ = sorted(_PUBLIC_API)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dpt_ros' has no attribute {name!r}")
    return getattr(import_module(module_name), name)
