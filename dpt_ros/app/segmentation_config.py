"""The segmentation node's configuration: the depth node's parameter table plus the segmentation ones.

One dataclass, one parameter table (see node_config): the fields below are added to (or change the
default of) DepthNodeConfig's. `model` is the depth preset to run in the same process; empty (the
default here) runs segmentation alone, and the depth-only parameters are then unused.
"""

import functools
from dataclasses import dataclass, replace

from dpt_ros.app.node_config import DepthNodeConfig, _param
from dpt_ros.pipeline.depth import OutputOptions
from dpt_ros.segmentation.classes import ClassTable, load_class_table


def segmentation_preset_names() -> tuple[str, ...]:
    """Presets whose output is class logits."""
    from dpt_ros.model.presets import PRESETS

    return tuple(sorted(name for name, preset in PRESETS.items() if preset.is_segmentation))


@functools.lru_cache(maxsize=8)
def _class_table(path: str) -> ClassTable:
    """Class tables are immutable: load each file once (the config asks for it on every frame)."""
    return load_class_table(path or None)


@dataclass(frozen=True)
class SegmentationNodeConfig(DepthNodeConfig):
    """All segmentation (and, in perception mode, depth) node settings."""

    model: str = _param(
        "",
        "depth preset to run in the same process (perception: one decode, one preprocessing, both networks, "
        "one header); empty = segmentation only",
    )
    segmentation_model: str = _param(
        "dpt_hybrid_ade20k", "DPT segmentation preset (150 ADE20K classes)", choices=segmentation_preset_names()
    )
    segmentation_weights: str = _param(
        "", "segmentation weights file; empty = models/<the preset's weights file> under the working directory"
    )
    class_table: str = _param(
        "", "class table YAML (ids, names, palette) of the segmentation model; empty = the packaged ADE20K table"
    )
    publish_semantic_colored: bool = _param(True, "publish the bgr8 palette image on 'semantic/colored'")
    publish_semantic_overlay: bool = _param(
        False, "publish a bgr8 blend of the image and the palette image on 'semantic/overlay'"
    )
    overlay_alpha: float = _param(
        0.5, "weight of the palette colours in 'semantic/overlay' (0 = image only)", runtime=True, low=0.0, high=1.0
    )
    ignore_classes: str = _param(
        "",
        "comma-separated class names whose points leave the point cloud, e.g. 'sky, ceiling' (names as on "
        "'semantic/classes'); needs depth (model)",
        runtime=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cameras:
            raise ValueError(
                "cameras works with the depth node only (one segmentation and label cloud per image): leave cameras "
                "empty and run one segmentation node per camera"
            )
        self.ignored_label_ids()  # loads the class table and checks every name: errors name the culprit

    def _check_model(self) -> None:
        if self.model:
            super()._check_model()
        elif self.lidar_alignment:
            raise ValueError("lidar_alignment aligns depth: set `model` to a depth preset to use it")

    def loaded_class_table(self) -> ClassTable:
        """The class table (ValueError naming the file when it is unreadable or malformed)."""
        try:
            return _class_table(self.class_table)
        except OSError as error:
            raise ValueError(f"class_table {self.class_table!r}: {error}") from None

    def ignored_label_ids(self) -> tuple[int, ...]:
        """Class ids of `ignore_classes` (UnknownClassError, a ValueError, lists unknown names)."""
        names = [name for name in self.ignore_classes.split(",") if name.strip()]
        return self.loaded_class_table().ids_for_names(names)

    def output_options(self) -> OutputOptions:
        return replace(super().output_options(), cloud_dropped_labels=self.ignored_label_ids())
