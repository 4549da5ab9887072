"""dpt_ros.model.download against a real HTTP server on 127.0.0.1: full, resumed, refused and broken
transfers, digest checks, and what is (never) left under the final name."""

import hashlib
import os
from pathlib import Path

import pytest

from dpt_ros.model.download import DownloadError, ExpectedDigest, download_file, part_path, source_url
from dpt_ros.model.presets import get_preset
from support.http_server import refused_url, serve_files

# Several chunks of CHUNK_BYTES, so a transfer has a middle to cut.
CONTENT = os.urandom(3 * (1 << 20) + 12345)
DIGEST = hashlib.sha256(CONTENT).hexdigest()
FULL = ExpectedDigest(sha256=DIGEST)


def test_full_download_is_verified_and_renamed_into_place(tmp_path):
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", tmp_path / "w.pt", FULL, progress=False)
    assert (tmp_path / "w.pt").read_bytes() == CONTENT
    assert (result.sha256, result.verification, result.fetched, result.reused) == (DIGEST, "sha256", len(CONTENT), False)
    assert not part_path(tmp_path / "w.pt").exists()
    assert server.requests == [("/w.pt", None)]


def test_a_cut_connection_keeps_the_part_file_and_the_next_run_resumes_with_range(tmp_path):
    destination = tmp_path / "w.pt"
    with serve_files({"/w.pt": CONTENT}) as server:
        server.cut_after = 1_500_000
        with pytest.raises(DownloadError, match=r"connection lost after 1500000 of \d+ bytes.*run the same command again"):
            download_file(server.url + "/w.pt", destination, FULL, progress=False)
        assert not destination.exists()  # nothing under the final name
        assert part_path(destination).stat().st_size == 1_500_000
        result = download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert server.requests == [("/w.pt", None), ("/w.pt", "bytes=1500000-")]
    assert (result.resumed_from, result.fetched) == (1_500_000, len(CONTENT) - 1_500_000)
    assert destination.read_bytes() == CONTENT and result.sha256 == DIGEST
    assert not part_path(destination).exists()


def test_server_gone_mid_transfer_then_refused_then_resumed_from_another_server(tmp_path):
    destination = tmp_path / "w.pt"
    with serve_files({"/w.pt": CONTENT}) as server:
        server.stop_after = 2_000_000
        with pytest.raises(DownloadError, match="connection lost after 2000000 of"):
            download_file(server.url + "/w.pt", destination, FULL, progress=False)
        gone = server.url
    with pytest.raises(DownloadError, match="cannot connect.*no network"):
        download_file(gone + "/w.pt", destination, FULL, progress=False)
    assert not destination.exists() and part_path(destination).stat().st_size == 2_000_000
    with serve_files({"/w.pt": CONTENT}) as mirror:
        result = download_file(mirror.url + "/w.pt", destination, FULL, progress=False)
    assert mirror.requests == [("/w.pt", "bytes=2000000-")]
    assert result.resumed_from == 2_000_000 and destination.read_bytes() == CONTENT


def test_a_part_file_that_is_already_whole_is_only_verified(tmp_path):
    destination = tmp_path / "w.pt"
    part_path(destination).write_bytes(CONTENT)
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert server.requests == [("/w.pt", f"bytes={len(CONTENT)}-")]  # answered 416 with the size
    assert (result.resumed_from, result.fetched) == (len(CONTENT), 0) and destination.read_bytes() == CONTENT


def test_hash_mismatch_deletes_the_download_and_leaves_nothing_under_the_final_name(tmp_path):
    destination = tmp_path / "w.pt"
    with serve_files({"/w.pt": CONTENT[:-1] + b"!"}) as server:
        with pytest.raises(DownloadError, match=f"sha256 [0-9a-f]{{64}} != expected {DIGEST}; the download was deleted"):
            download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert not destination.exists() and not part_path(destination).exists()


def test_prefix_only_digest_is_checked_and_the_full_digest_reported(tmp_path):
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", tmp_path / "w.pt", ExpectedDigest(prefix=DIGEST[:8]), progress=False)
        assert (result.verification, result.sha256) == ("prefix", DIGEST)
        wrong_prefix = ExpectedDigest(prefix="00000000" if not DIGEST.startswith("00000000") else "11111111")
        with pytest.raises(DownloadError, match=f"sha256 {DIGEST} does not start with"):
            download_file(server.url + "/w.pt", tmp_path / "x.pt", wrong_prefix, progress=False)
    assert not (tmp_path / "x.pt").exists() and not part_path(tmp_path / "x.pt").exists()


def test_404_is_one_clear_error(tmp_path):
    with serve_files({}) as server:
        with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
            download_file(server.url + "/absent.pt", tmp_path / "w.pt", FULL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_no_network_is_one_clear_error(tmp_path):
    with pytest.raises(DownloadError, match="cannot connect.*--mirror"):
        download_file(refused_url() + "/w.pt", tmp_path / "w.pt", FULL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_verified_file_is_not_downloaded_again(tmp_path):
    (tmp_path / "w.pt").write_bytes(CONTENT)
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", tmp_path / "w.pt", FULL, progress=False)
    assert result.reused and server.requests == []


def test_an_existing_file_with_the_wrong_digest_is_replaced_atomically(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"truncated")
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", tmp_path / "w.pt", FULL, progress=False)
    assert result.replaced and (tmp_path / "w.pt").read_bytes() == CONTENT


def test_a_part_file_longer_than_the_source_is_restarted_from_zero(tmp_path):
    destination = tmp_path / "w.pt"
    part_path(destination).write_bytes(CONTENT + b"stale tail of some other file")
    with serve_files({"/w.pt": CONTENT}) as server:
        result = download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert server.requests == [("/w.pt", f"bytes={len(CONTENT) + 29}-"), ("/w.pt", None)]  # 416, then all of it
    assert result.resumed_from == 0 and destination.read_bytes() == CONTENT


def test_a_server_without_range_support_sends_the_whole_file_which_replaces_the_part_file(tmp_path):
    destination = tmp_path / "w.pt"
    part_path(destination).write_bytes(CONTENT[:1000])
    with serve_files({"/w.pt": CONTENT}) as server:
        server.ignore_range = True
        result = download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert server.requests == [("/w.pt", "bytes=1000-")]  # asked to resume, got a 200 with everything
    assert (result.resumed_from, result.fetched) == (0, len(CONTENT)) and destination.read_bytes() == CONTENT


def test_local_mirror_folder_resumes_too(tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "w.pt").write_bytes(CONTENT)
    destination = tmp_path / "models" / "w.pt"
    destination.parent.mkdir()
    part_path(destination).write_bytes(CONTENT[:1000])
    result = download_file((tmp_path / "mirror" / "w.pt").as_uri(), destination, FULL, progress=False)
    assert (result.resumed_from, result.fetched) == (1000, len(CONTENT) - 1000)
    assert destination.read_bytes() == CONTENT


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_disk_full_is_one_clear_error_and_nothing_lands_under_the_final_name(tmp_path):
    destination = tmp_path / "w.pt"
    part_path(destination).symlink_to("/dev/full")  # every write fails with ENOSPC
    with serve_files({"/w.pt": CONTENT}) as server:
        with pytest.raises(DownloadError, match="disk full writing .* free some space"):
            download_file(server.url + "/w.pt", destination, FULL, progress=False)
    assert not destination.exists()


def test_local_mirror_folder_and_mirror_url_name_the_official_file():
    preset = get_preset("dpt_hybrid_midas")
    assert source_url(preset) == preset.url
    assert source_url(preset, mirror="http://m.local/dpt/") == "http://m.local/dpt/" + preset.weights_file
    assert source_url(preset, mirror="/srv/weights") == "file:///srv/weights/" + preset.weights_file
    assert source_url(preset, url="http://x/y.pt", mirror="/srv") == "http://x/y.pt"
