"""The command line's exit codes: 2 for the project's input errors only, a bug keeps its
traceback, and ``demo`` stops at the first step that fails."""
from __future__ import annotations

import pytest

from bbam_captum import demo
from bbam_captum.cli.main import main
from bbam_captum.errors import InputError


def _raise(error: Exception):
    def raiser(*args, **kwargs):
        raise error
    return raiser


def test_input_error_from_deep_inside_exits_2_with_its_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bbam_captum.synth.coco.draw_image", _raise(InputError("no such world")))
    assert main(["synth", str(tmp_path / "data"), "--num-images", "1"]) == 2
    assert capsys.readouterr().err.endswith("\nbbam-captum synth: error: no such world\n")  # after the progress bar


def test_other_value_errors_are_bugs_and_keep_their_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr("bbam_captum.synth.coco.draw_image", _raise(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main(["synth", str(tmp_path / "data"), "--num-images", "1"])


@pytest.mark.parametrize("failing, code", [("synth", 2), ("generate", 1), ("evaluate", 2), ("report", 1)])
def test_demo_stops_at_the_first_failed_step_with_its_code(tmp_path, capsys, monkeypatch, failing, code):
    ran = []

    def cli(argv: list[str]) -> int:
        ran.append(argv[0])
        return code if argv[0] == failing else 0

    monkeypatch.setattr(demo, "cli", cli)
    monkeypatch.setattr(demo, "box_fill_miou", lambda ann: 0.5)
    monkeypatch.setattr(demo, "demo_figure", lambda *args: None)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "eval.json").write_text('{"instance_miou": 0.8}')
    with pytest.raises(SystemExit) as stopped:
        demo.main(["--out", str(tmp_path)])
    assert stopped.value.code == code
    steps = ["synth", "generate", "evaluate", "report"]
    assert ran == steps[:steps.index(failing) + 1]
    assert f"'bbam-captum {failing}' failed (exit code {code})" in capsys.readouterr().err


def test_demo_returns_0_when_every_step_succeeds(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(demo, "cli", lambda argv: ran.append(argv[0]) or 0)
    monkeypatch.setattr(demo, "box_fill_miou", lambda ann: 0.5)
    monkeypatch.setattr(demo, "demo_figure", lambda *args: None)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "eval.json").write_text('{"instance_miou": 0.8}')
    assert demo.main(["--out", str(tmp_path)]) == 0
    assert ran == ["synth", "generate", "evaluate", "report"]
