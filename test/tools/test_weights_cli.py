import hashlib

from dpt_ros.model.presets import PRESETS, get_preset
from dpt_ros.tools import weights as cli


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
