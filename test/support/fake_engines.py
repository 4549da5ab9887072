"""Stand-ins for dpt_ros.model.engine.InferenceEngine, shared by the tests.

`FakeEngine(preset, predict=..., **options)` has the engine's constructor signature (so
`partial(FakeEngine, predict=...)` is an engine factory for a node or for app.depth_setup) and the
attributes the pipelines and nodes read; `predict(rgb)` gives the prediction of each image.
`fixed_prediction` and `lookup_by_content` make the two kinds of `predict` the tests need.
"""

import hashlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from dpt_ros.model.presets import Preset, get_preset

Predict = Callable[[np.ndarray], np.ndarray]


class FakeEngine:
    """An engine whose network is `predict`. options keeps the keyword arguments it was built with."""

    def __init__(self, preset: Preset | str = "dpt_hybrid_midas", predict: Predict | None = None, **options: Any) -> None:
        import torch

        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        self.options = options
        self.predict = predict
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.random_weights = False
        self.input_size = options.get("input_size")
        self.images_seen = 0

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        assert self.predict is not None, "this FakeEngine records its options only"
        self.images_seen += 1
        return self.predict(rgb)

    def infer_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self.infer(rgb) for rgb in images]


def fake_engine_factory(predict: Predict | None = None) -> Callable[..., FakeEngine]:
    """An engine factory (InferenceEngine's signature) that builds FakeEngines predicting with `predict`."""
    return partial(FakeEngine, predict=predict)


def fixed_prediction(prediction: np.ndarray) -> Predict:
    """The same (H, W) prediction for every image of that size (a copy: callers may write to it)."""

    def predict(rgb: np.ndarray) -> np.ndarray:
        assert rgb.shape[:2] == prediction.shape, (rgb.shape, prediction.shape)
        return prediction.copy()

    return predict


def content_key(rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()


def lookup_by_content(values: Mapping[str, np.ndarray], transform: Callable[[np.ndarray], np.ndarray]) -> Predict:
    """Each image's prediction from its content: transform(values[content_key(rgb)]) (e.g. truth -> a/z + b)."""
    return lambda rgb: transform(values[content_key(rgb)])
