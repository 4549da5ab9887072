"""A transform tree read from a bag's /tf_static and /tf, for extrinsic look-ups without tf2_ros.

Static transforms hold forever; dynamic ones are looked up at the sample nearest the asked time (within a
tolerance). Chains of any length are resolved through the frame graph in either direction.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpt_ros.geometry.transforms import invert_transform, transform_from_xyz_quaternion


def _transform_of(message_transform: Any) -> np.ndarray:
    t, r = message_transform.translation, message_transform.rotation
    return transform_from_xyz_quaternion((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))


class TransformLookupError(LookupError):
    pass


@dataclass
class TransformTree:
    """Edges parent→child with ``T_parent_child`` (maps child coordinates into the parent frame)."""

    static: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    dynamic: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = field(
        default_factory=lambda: defaultdict(lambda: ([], [])))

    def add_message(self, tf_message: Any, is_static: bool) -> None:
        """Add every TransformStamped of a tf2_msgs/TFMessage (as read by rosbags)."""
        for stamped in tf_message.transforms:
            parent, child = stamped.header.frame_id.lstrip("/"), stamped.child_frame_id.lstrip("/")
            transform = _transform_of(stamped.transform)
            if is_static:
                self.static[(parent, child)] = transform
            else:
                stamp = int(stamped.header.stamp.sec) * 1_000_000_000 + int(stamped.header.stamp.nanosec)
                stamps, transforms = self.dynamic[(parent, child)]
                index = bisect.bisect(stamps, stamp)
                stamps.insert(index, stamp)
                transforms.insert(index, transform)

    @property
    def frames(self) -> set[str]:
        return {frame for edge in list(self.static) + list(self.dynamic) for frame in edge}

    def _edge(self, parent: str, child: str, stamp_ns: int, tolerance_ns: int) -> np.ndarray | None:
        if (parent, child) in self.static:
            return self.static[(parent, child)]
        stamps, transforms = self.dynamic[(parent, child)]
        if not stamps:
            return None
        index = bisect.bisect(stamps, stamp_ns)
        candidates = [i for i in (index - 1, index) if 0 <= i < len(stamps)]
        best = min(candidates, key=lambda i: abs(stamps[i] - stamp_ns))
        return transforms[best] if abs(stamps[best] - stamp_ns) <= tolerance_ns else None

    def lookup(self, target: str, source: str, stamp_ns: int, tolerance_ns: int = 100_000_000) -> np.ndarray:
        """``T_target_source`` (maps ``source`` coordinates into ``target``) at ``stamp_ns``.

        Raises TransformLookupError naming the frames when no chain connects them at that time.
        """
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        neighbours: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for parent, child in list(self.static) + [edge for edge, (stamps, _) in self.dynamic.items() if stamps]:
            neighbours[parent].append((child, parent, child))
            neighbours[child].append((parent, parent, child))
        # breadth-first from source; each hop composes the edge in the direction walked
        reached: dict[str, np.ndarray] = {source: np.eye(4)}  # T_frame_source
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            for other, parent, child in neighbours[frame]:
                if other in reached:
                    continue
                edge = self._edge(parent, child, stamp_ns, tolerance_ns)
                if edge is None:
                    continue
                step = edge if frame == child else invert_transform(edge)  # T_other_frame
                reached[other] = step @ reached[frame]
                if other == target:
                    return reached[other]
                queue.append(other)
        known = ", ".join(sorted(self.frames)) or "none"
        raise TransformLookupError(f"no transform from '{source}' to '{target}' (frames in the bag's TF: {known})")
