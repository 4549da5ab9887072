"""Frames with depth prompts through the pipeline: the prompt reaches the engine, metres only when usable."""

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.pipeline.depth import METRIC_DEPTH, RELATIVE_DEPTH, DepthPipeline, Frame, OutputOptions
from dpt_ros.pipeline.prompt_stage import PromptedDepth
from dpt_ros.prompt.sources import NO_PROMPT, DepthPrompt

CAMERA = PinholeIntrinsics(2.0, 2.0, 1.5, 0.5, 4, 2)
RGB = np.zeros((2, 4, 3), np.uint8)
PROMPT = np.array([[2.0, 3.0], [4.0, 5.0]], np.float32)


class RecordingPromptBackend:
    """Metres = the prompt's mean when given one, a (0, 1) value without; records what it was handed."""

    def __init__(self) -> None:
        self.prompts: list = []

    def infer(self, rgb):
        raise AssertionError("a prompt frame must go through infer_batch with its prompt")

    def infer_batch(self, images, prompts=None):
        self.prompts.append(prompts)
        out = []
        for prompt in prompts:
            value = 0.25 if prompt is None else float(np.mean(prompt))
            prediction = np.full((2, 4), value, np.float32)
            prediction[0, 0] = np.nan
            out.append(prediction)
        return out


def test_usable_prompt_gives_metres_and_a_cloud():
    backend, stage = RecordingPromptBackend(), PromptedDepth()
    pipeline = DepthPipeline(backend, stage)
    frame = Frame(RGB, CAMERA, prompt=DepthPrompt(PROMPT, PROMPT, ""))
    outputs = pipeline.process(frame, OutputOptions(), want_cloud=True)
    assert backend.prompts == [[PROMPT]]
    assert outputs.depth.kind == METRIC_DEPTH and outputs.cloud is not None
    assert np.isnan(outputs.depth.values[0, 0]) and outputs.depth.values[1, 1] == 3.5
    assert outputs.prompt is frame.prompt


def test_refused_prompt_runs_without_one_and_stays_relative():
    backend = RecordingPromptBackend()
    pipeline = DepthPipeline(backend, PromptedDepth())
    frames = [Frame(RGB, CAMERA, prompt=DepthPrompt(None, None, NO_PROMPT)),
              Frame(RGB, CAMERA, prompt=DepthPrompt(PROMPT, PROMPT, ""))]
    outputs = pipeline.process_batch(frames, OutputOptions(), want_cloud=[True, True], want_colored=[True, False])
    assert backend.prompts[0][0] is None and backend.prompts[0][1] is PROMPT
    relative, metric = outputs
    assert relative.depth.kind == RELATIVE_DEPTH and not relative.depth.is_metric and relative.cloud is None
    assert relative.depth.values[1, 1] == 0.25 and relative.colored.shape == (2, 4, 3)
    assert metric.depth.kind == METRIC_DEPTH and relative.prompt.reason == NO_PROMPT
