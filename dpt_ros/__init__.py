"""dpt_ros: metric depth, point clouds and semantic masks from Dense Prediction Transformers.

The public API is imported lazily so that `import dpt_ros` stays cheap and never pulls in rclpy
(or torch, until a model function is used). Every name here lives in the ROS-free core.
"""

from importlib import import_module
from typing import Any

# public name -> module that defines it
_PUBLIC_API = {
    "build_model": "dpt_ros.model.dpt",
    "preprocess": "dpt_ros.model.preprocess",
    "get_preset": "dpt_ros.model.presets",
    "PRESETS": "dpt_ros.model.presets",
    "InferenceEngine": "dpt_ros.model.engine",
    "DepthPipeline": "dpt_ros.pipeline.depth",
    "build_point_cloud": "dpt_ros.geometry.pointcloud",
    "DepthNodeConfig": "dpt_ros.app.node_config",
    "project_lidar": "dpt_ros.geometry.lidar_projection",
    "project_points": "dpt_ros.geometry.lidar_projection",
    "ProjectedPoints": "dpt_ros.geometry.lidar_projection",
    "fit_scale_shift": "dpt_ros.alignment.fit",
    "fit_scale": "dpt_ros.alignment.fit",
    "to_metric": "dpt_ros.alignment.fit",
    "AlignmentConfig": "dpt_ros.alignment.fit",
    "AlignmentResult": "dpt_ros.alignment.fit",
    "TemporalAlignmentFilter": "dpt_ros.alignment.temporal_filter",
    "TemporalFilterConfig": "dpt_ros.alignment.temporal_filter",
    "FilteredAlignment": "dpt_ros.alignment.temporal_filter",
    "FilterState": "dpt_ros.alignment.temporal_filter",
    "xyz_from_cloud_buffer": "dpt_ros.geometry.cloud_fields",
    "load_class_table": "dpt_ros.segmentation.classes",
    "labels_from_logits": "dpt_ros.segmentation.classes",
    "colorize_labels": "dpt_ros.segmentation.classes",
    "confusion_matrix": "dpt_ros.eval.segmentation_metrics",
    "pixel_accuracy": "dpt_ros.eval.segmentation_metrics",
    "mean_iou": "dpt_ros.eval.segmentation_metrics",
    "TestTimeAugmentation": "dpt_ros.segmentation.classes",
    "resize_labels": "dpt_ros.segmentation.classes",
    "labels_from_ade20k_annotation": "dpt_ros.segmentation.classes",
    "augmented_class_probabilities": "dpt_ros.pipeline.segmentation",
}

__all__ = sorted(_PUBLIC_API)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_API.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dpt_ros' has no attribute {name!r}")
    return getattr(import_module(module_name), name)
