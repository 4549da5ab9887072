"""Recordings cut short: a truncated mcap gives every message of its complete chunks, a torn sqlite3 file every
intact row; the evaluator scores what was recovered and says how much that was."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2.storage_mcap import McapReader

from dpt_ros.bags.rosbag_io import (
    CAMERA_INFO,
    BagError,
    BagWriter,
    iterate_messages,
    make_camera_info,
    open_bag,
    reading_warning,
)
from dpt_ros.eval.holdout import HoldoutConfig
from dpt_ros.tools.evaluate_bag import EvaluationOptions, evaluate_bag
from dpt_ros.tools.make_sample_bag import sample_config, write_sample_bag
from support.exact_scene import TruthPredictor


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def _cut_copy(bag: Path, destination: Path, length: int) -> Path:
    """A copy of the bag directory whose storage file keeps only its first ``length`` bytes."""
    shutil.copytree(bag, destination)
    storage = _storage_file(destination)
    storage.write_bytes(storage.read_bytes()[:length])
    return destination


def _raw_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    reader = open_bag(bag)
    try:
        topics = list(reader.topics)
        connections = [c for c in reader.connections if c.topic in topics]
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages(connections=connections)]
    finally:
        reader.close()


@pytest.fixture(scope="module")
def sample_mcap(tmp_path_factory) -> Path:
    """8 frames of 160×120: three chunks of about 1 MiB (rosbags closes a chunk past 1 MiB)."""
    return write_sample_bag(tmp_path_factory.mktemp("mcap") / "bag", "mcap", sample_config(8, 160, 120)).path


def _chunks(bag: Path) -> list[tuple[int, int, int]]:
    """(start, length, messages) of each chunk, from the intact file's own index (rosbags' reader)."""
    reader = McapReader(_storage_file(bag))
    reader.open()
    try:
        return [(c.chunk_start_offset, c.chunk_length, sum(c.channel_count.values())) for c in reader.chunks]
    finally:
        reader.close()


@pytest.mark.parametrize("cut", ["inside the second chunk", "inside the last chunk", "inside the summary"])
def test_a_truncated_mcap_gives_every_message_of_its_complete_chunks(sample_mcap, tmp_path, cut):
    chunks = _chunks(sample_mcap)
    assert len(chunks) == 3
    length = {"inside the second chunk": chunks[1][0] + chunks[1][1] // 2,
              "inside the last chunk": chunks[2][0] + 100,
              "inside the summary": chunks[2][0] + chunks[2][1] + 40}[cut]
    complete = [c for c in chunks if c[0] + c[1] <= length]
    expected = sum(c[2] for c in complete)
    damaged = _cut_copy(sample_mcap, tmp_path / "cut", length)
    with pytest.raises(Exception, match="magic"):  # what rosbags alone says
        from rosbags.highlevel import AnyReader
        AnyReader([damaged]).open()
    recovered = _raw_messages(damaged)
    assert len(recovered) == expected
    assert recovered == _raw_messages(sample_mcap)[:expected]  # the same messages, bytes and all, in order
    reader = open_bag(damaged)
    assert f"recovered {expected} messages from its {len(complete)} complete chunks" in reading_warning(reader)
    reader.close()


def test_nothing_recoverable_stays_an_error(sample_mcap, tmp_path):
    damaged = _cut_copy(sample_mcap, tmp_path / "cut", _chunks(sample_mcap)[0][1] // 2)  # inside the first chunk
    with pytest.raises(BagError, match="cannot read bag"):
        open_bag(damaged)


def test_a_torn_sqlite3_bag_gives_its_intact_rows(tmp_path):
    """2000 small messages (each row inline in one page); the file cut at a page boundary. A message is intact
    when its bytes are still in the file: it must come back, and nothing else may."""
    bag = tmp_path / "bag"
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    with BagWriter(bag, "sqlite3") as writer:
        writer.add_topic("/camera_info", CAMERA_INFO)
        for i in range(2000):
            writer.write("/camera_info", 1_000_000 + i, make_camera_info(K, 640 + i, 480, i * 1000, "cam"))
    storage = _storage_file(bag)
    data = storage.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    length = len(data) * 6 // 10 // page * page
    damaged = _cut_copy(bag, tmp_path / "torn", length)
    torn = _storage_file(damaged).read_bytes()
    intact = [raw for _, _, raw in _raw_messages(bag) if raw in torn]
    assert 500 < len(intact) < 2000
    recovered = _raw_messages(damaged)
    assert [raw for _, _, raw in recovered] == intact
    reader = open_bag(damaged)
    messages = list(iterate_messages(reader, ["/camera_info"]))  # they deserialise like any bag's
    reader.close()
    assert [m.width for _, _, m in messages] == [640 + i for i in range(len(intact))]
    assert "recovered" in reading_warning(reader) and "intact rows" in reading_warning(reader)


def test_the_evaluator_scores_what_was_recovered_and_says_so(sample_mcap, tmp_path, capsys):
    chunks = _chunks(sample_mcap)
    damaged = _cut_copy(sample_mcap, tmp_path / "cut", chunks[2][0] + 100)  # the last chunk torn
    config = sample_config(8, 160, 120)
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.25), progress=False, n_examples=0)
    report, summary = evaluate_bag(damaged, TruthPredictor(config), "relative_inverse_depth", tmp_path / "run",
                                   options)
    recovered = chunks[0][2] + chunks[1][2]
    assert f"recovered {recovered} messages" in summary["recording_warning"]
    assert 0 < summary["frames"]["total"] < 8 and summary["frames"]["scored"] >= 1
    assert summary["methods"]["node"]["metrics"]["abs_rel"] < 0.1
    assert f"recovered {recovered} messages" in report.read_text()
