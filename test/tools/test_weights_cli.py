import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from dpt_ros.model import download
from dpt_ros.model.presets import PRESETS, get_preset
from dpt_ros.tools import weights as cli
from support.http_server import refused_url, serve_files


def test_list_shows_every_preset(capsys, tmp_path):
    assert cli.main(["list", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for preset in PRESETS.values():
        assert preset.weights_file in out and preset.url in out


def test_verify_rejects_a_file_with_the_wrong_hash(capsys, tmp_path):
    preset = get_preset("dpt_hybrid_midas")
    (tmp_path / preset.weights_file).write_bytes(b"not the released weights")
    assert cli.main(["verify", "--models-dir", str(tmp_path)]) == 1
    assert "BAD HASH" in capsys.readouterr().out


def test_verify_reports_missing_requested_presets(capsys, tmp_path):
    assert cli.main(["verify", "dpt_large_midas", "--models-dir", str(tmp_path)]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_verify_accepts_a_matching_prefix(monkeypatch, capsys, tmp_path):
    preset = get_preset("dpt_hybrid_nyu")
    content = b"x"
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / preset.weights_file).write_bytes(content)
    monkeypatch.setitem(PRESETS, preset.name, preset.__class__(**{**preset.__dict__, "sha256_prefix": digest[:8]}))
    assert cli.main(["verify", "dpt_hybrid_nyu", "--models-dir", str(tmp_path)]) == 0
    assert digest in capsys.readouterr().out


def test_unknown_preset_is_an_error(tmp_path):
    assert cli.main(["verify", "dpt_tiny", "--models-dir", str(tmp_path)]) == 2


def _served_preset(monkeypatch, name: str, url: str, **digest: str):
    """A preset added as data only (as new model families are): its own URL, file name and digest."""
    preset = dataclasses.replace(get_preset("dpt_hybrid_midas"), name=name, weights_file=f"{name}.pth",
                                 weights_url=url, sha256_prefix="", **digest)
    monkeypatch.setitem(PRESETS, name, preset)
    return preset


def test_download_fetches_a_data_only_preset_and_verifies_its_full_digest(monkeypatch, capsys, tmp_path):
    content = b"weights" * 1000
    digest = hashlib.sha256(content).hexdigest()
    with serve_files({"/new.pth": content}) as server:
        _served_preset(monkeypatch, "new_model", server.url + "/new.pth", sha256=digest)
        assert cli.main(["download", "new_model", "--quiet", "--models-dir", str(tmp_path)]) == 0
        assert (tmp_path / "new_model.pth").read_bytes() == content
        assert f"sha256 {digest} (full SHA-256 verified)" in capsys.readouterr().out
        assert cli.main(["download", "new_model", "--quiet", "--models-dir", str(tmp_path)]) == 0  # already there
        assert "already present" in capsys.readouterr().out
    assert len(server.requests) == 1


def test_download_from_a_mirror_folder_checks_the_official_prefix_and_prints_the_full_digest(monkeypatch, capsys, tmp_path):
    preset = get_preset("dpt_hybrid_nyu")
    content = b"x"
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(PRESETS, preset.name, dataclasses.replace(preset, sha256_prefix=digest[:8]))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / preset.weights_file).write_bytes(content)
    models = tmp_path / "models"
    assert cli.main(["download", preset.name, "--quiet", "--mirror", str(mirror), "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert digest in out and f"prefix {digest[:8]} verified" in out
    assert (models / preset.weights_file).read_bytes() == content


@pytest.mark.parametrize("failure", ["404", "no network", "hash mismatch"])
def test_download_errors_are_one_line_and_exit_2(monkeypatch, capsys, tmp_path, failure):
    content = b"payload"
    digest = hashlib.sha256(b"something else").hexdigest() if failure == "hash mismatch" else ""
    with serve_files({"/p.pth": content}) as server:
        url = {"404": server.url + "/absent.pth", "no network": refused_url() + "/p.pth",
               "hash mismatch": server.url + "/p.pth"}[failure]
        _served_preset(monkeypatch, "p", url, sha256=digest)
        assert cli.main(["download", "p", "--quiet", "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dpt-ros-weights download: "), err
    assert {"404": "HTTP 404", "no network": "cannot connect", "hash mismatch": "the download was deleted"}[failure] in err
    assert not (tmp_path / "p.pth").exists() and not (tmp_path / "p.pth.part").exists()


def test_download_usage_errors_exit_2(capsys, tmp_path):
    assert cli.main(["download", "--models-dir", str(tmp_path)]) == 2  # nothing named
    assert cli.main(["download", "--all", "dpt_hybrid_nyu", "--models-dir", str(tmp_path)]) == 2
    assert cli.main(["download", "dpt_hybrid_nyu", "dpt_hybrid_kitti", "--url", "http://127.0.0.1:9/x"]) == 2
    assert cli.main(["download", "dpt_tiny"]) == 2
    assert all(line.startswith(("dpt-ros-weights", "unknown preset")) for line in capsys.readouterr().err.splitlines())


def test_download_all_fetches_every_preset_from_a_mirror_url(monkeypatch, capsys, tmp_path):
    files = {}
    for name, preset in list(PRESETS.items()):
        content = name.encode() * 100
        files["/mirror/" + preset.weights_file] = content
        monkeypatch.setitem(PRESETS, name, dataclasses.replace(preset, sha256=hashlib.sha256(content).hexdigest()))
    with serve_files(files) as server:
        assert cli.main(["download", "--all", "--quiet", "--mirror", server.url + "/mirror/", "--models-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.weights_file for p in PRESETS.values())


@pytest.mark.parametrize("failure", ["disk full", "not enough space", "server gone"])
def test_download_failures_mid_transfer_are_one_line_exit_2_and_nothing_under_the_final_name(
        monkeypatch, capsys, tmp_path, failure):
    content = os.urandom(3 << 20)
    with serve_files({"/p.pth": content}) as server:
        _served_preset(monkeypatch, "p", server.url + "/p.pth", sha256=hashlib.sha256(content).hexdigest())
        if failure == "disk full":
            if not Path("/dev/full").exists():
                pytest.skip("needs /dev/full to simulate a full disk")
            (tmp_path / "p.pth.part").symlink_to("/dev/full")  # every write fails with ENOSPC
        elif failure == "not enough space":  # known before writing a byte, from Content-Length
            monkeypatch.setattr(download.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 1000))
        else:
            server.stop_after = 1 << 20
        assert cli.main(["download", "p", "--quiet", "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dpt-ros-weights download: "), err
    assert {"disk full": "disk full writing", "not enough space": "disk full: ",
            "server gone": "connection lost after 1048576 of"}[failure] in err, err
    assert not (tmp_path / "p.pth").exists()
