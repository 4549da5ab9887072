"""Load: a camera faster than inference. Latency stays bounded, memory does not grow.

The camera runs at 30 Hz, or faster where this machine's inference (measured during warm-up) would keep up
with 30 Hz, so that frames must queue up and the newest-only policy must drop some on any machine.
Runs DPT_ROS_LOAD_SECONDS (default 60) of streaming after warm-up. For a soak, run e.g.
    DPT_ROS_LOAD_SECONDS=300 DPT_ROS_LOAD_PLOT=load.png python -m pytest test/test_depth_node_load.py -s
which also plots output age and node memory over time (and saves the raw series next to the plot).
"""

import os
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from support.depth_node_harness import (
    TEST_PARAMETERS,
    NodeProcess,
    RosPeer,
    camera_info,
    header,
    pattern_image,
    publish_until,
    raw_image,
    stamp,
)

pytestmark = pytest.mark.ros

LOAD_SECONDS = float(os.environ.get("DPT_ROS_LOAD_SECONDS", "60"))
WARM_UP_SECONDS = 10.0
CAMERA_HZ = 30.0  # a real camera's rate; raised where inference is faster than a third of its period
MAX_CAMERA_HZ = 100.0  # 640x480 rgb8 at 100 Hz is ~90 MB/s through shared memory: more would load the CPU itself
FRAMES_PER_INFERENCE = 3  # camera frames arriving during one inference: at least two of them are dropped
WIDTH, HEIGHT = 640, 480
DELIVERY_SLACK_S = 0.1  # delivery of one message to this process, on a CPU shared with other jobs
HEAP_GROWTH_LIMIT = 25 * 2**20  # one leaked 640x480 frame per output would pass this in seconds


def _wall_stamp(now: float):
    return stamp(int(now), int((now % 1) * 1e9))


def _stamp_seconds(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Camera:
    """Publishes a 640x480 rgb8 image + camera_info at `hz` (settable while running), stamped with the wall clock."""

    def __init__(self, peer: RosPeer, namespace: str) -> None:
        self.image_pub = peer.publisher(Image, f"{namespace}/image")
        self.info_pub = peer.publisher(CameraInfo, f"{namespace}/camera_info")
        self.image = raw_image(header(stamp(0)), pattern_image(WIDTH, HEIGHT), "rgb8")
        self.info = camera_info(header(stamp(0)), WIDTH, HEIGHT, focal=500.0)
        self.sent = 0
        self.hz = CAMERA_HZ
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send_one(self) -> None:
        at = _wall_stamp(time.time())
        self.image.header.stamp = at
        self.info.header.stamp = at
        self.info_pub.publish(self.info)
        self.image_pub.publish(self.image)
        self.sent += 1

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            self.send_one()
            next_time += 1.0 / self.hz
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.timeout(LOAD_SECONDS + 180)
def test_latency_bounded_and_memory_flat_under_a_30hz_camera(tmp_path) -> None:
    peer = RosPeer()
    node = NodeProcess(
        {**TEST_PARAMETERS, "model": "dpt_hybrid_kitti", "input_size": [384, 288]}, tmp_path, "/load"
    )
    try:
        depth = peer.collect(Image, "/load/depth")
        peer.collect(PointCloud2, "/load/points")  # the cloud is built too, as on a robot
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        camera = Camera(peer, "/load")
        assert publish_until(camera.send_one, lambda: bool(depth.messages)), node.output()
        camera.start()
        time.sleep(WARM_UP_SECONDS)
        # The node's own measure of one inference (its latency median over the warm-up) sets the camera rate.
        inference_s = float(_latest_status(diagnostics)["inference_latency_p50_ms"]) / 1e3
        camera.hz = min(max(CAMERA_HZ, FRAMES_PER_INFERENCE / inference_s), MAX_CAMERA_HZ)
        first_counted = len(depth.messages)
        rss_samples = []
        started = time.monotonic()
        while time.monotonic() - started < LOAD_SECONDS:
            rss_samples.append((time.monotonic() - started, node.memory_bytes()))
            time.sleep(1.0)
        camera.stop()
        assert node.process.poll() is None, node.output()
    finally:
        return_code = node.stop()
        peer.close()
    assert return_code == 0, node.output()

    messages, arrivals = depth.snapshot()
    messages, arrivals = messages[first_counted:], np.asarray(arrivals[first_counted:])
    stamps = np.asarray([_stamp_seconds(m) for m in messages])
    ages = arrivals - stamps
    periods = np.diff(arrivals)  # inference is serial: the time between outputs is one inference period
    assert len(messages) >= 10, node.output()
    assert np.all(np.diff(stamps) > 0), "outputs went back in time"
    rss = np.asarray([sample["VmRSS"] for _, sample in rss_samples], dtype=np.float64)
    heap = np.asarray([sample["RssAnon"] for _, sample in rss_samples], dtype=np.float64)
    # Single samples swing by ~40 MB with the frame in flight: compare the first and last thirds' medians.
    third = max(len(heap) // 3, 1)
    heap_first, heap_last = np.median(heap[:third]), np.median(heap[-third:])
    status = _latest_status(diagnostics)
    summary = (
        f"{LOAD_SECONDS:.0f} s at {camera.hz:.0f} Hz (warm-up inference {inference_s * 1e3:.0f} ms): "
        f"{len(messages)} outputs ({len(messages) / LOAD_SECONDS:.1f} Hz), "
        f"inference period median {np.median(periods) * 1e3:.0f} ms / max {periods.max() * 1e3:.0f} ms, "
        f"output age median {np.median(ages) * 1e3:.0f} ms / max {ages.max() * 1e3:.0f} ms, "
        f"node RSS {rss[0] / 2**20:.0f} -> {rss[-1] / 2**20:.0f} MiB (max {rss.max() / 2**20:.0f}), "
        f"heap (RssAnon) median {heap_first / 2**20:.0f} MiB in the first third, {heap_last / 2**20:.0f} MiB in the "
        f"last (max {heap.max() / 2**20:.0f}), "
        f"dropped {status['frames_dropped_newer_arrived']}, processed {status['frames_processed']}"
    )
    print(summary)
    if os.environ.get("DPT_ROS_LOAD_PLOT"):
        _plot(os.environ["DPT_ROS_LOAD_PLOT"], arrivals - arrivals[0], ages, rss_samples, summary)
        np.savez(os.environ["DPT_ROS_LOAD_PLOT"] + ".npz", arrivals=arrivals, stamps=stamps, heap=heap, rss=rss)

    # Newest-only: the image in output k arrived after the worker took the image of output k-1, which
    # it did after publishing output k-2. So output k is at most the two inference periods since output
    # k-2 old (measured between arrivals here, plus the delivery delay of one message as slack).
    two_periods = arrivals[2:] - arrivals[:-2]
    assert np.all(ages[2:] <= two_periods + DELIVERY_SLACK_S), (ages[2:] - two_periods).max()
    # A queue of even 2-3 frames would put the typical age at 3 or more periods.
    assert np.median(ages) <= 2 * np.median(periods), summary
    if np.median(periods) >= 2 / camera.hz:  # two or more frames arrive per inference: one must be dropped
        assert int(status["frames_dropped_newer_arrived"]) > 0, summary
    else:  # only where one inference takes less than 2 / MAX_CAMERA_HZ (a GPU): nothing can queue up
        print(f"inference outpaced a {camera.hz:.0f} Hz camera: the newest-only drop was not exercised")
    assert heap_last - heap_first < HEAP_GROWTH_LIMIT, summary


def _latest_status(diagnostics) -> dict[str, str]:
    """Key/values of the node's latest diagnostics status."""
    messages, _ = diagnostics.snapshot()
    return {kv.key: kv.value for kv in messages[-1].status[0].values}


def _plot(path: str, times: np.ndarray, ages: np.ndarray, rss_samples: list, summary: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (age_axis, rss_axis) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    age_axis.plot(times, ages * 1e3, ".", markersize=3)
    age_axis.set_ylabel("output age (ms)")
    sample_times = [t for t, _ in rss_samples]
    for key in ("VmRSS", "RssAnon"):
        rss_axis.plot(sample_times, [sample[key] / 2**20 for _, sample in rss_samples], label=key)
    rss_axis.legend()
    rss_axis.set_ylabel("node memory (MiB)")
    rss_axis.set_xlabel("seconds after warm-up")
    figure.suptitle(summary, fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
