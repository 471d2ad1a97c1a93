"""The command line answers ``--help`` and input errors without importing torch or OpenMMLab (seconds
of imports): the parsers and the input checks are light, the command bodies import what they need."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "torchvision", "mmdet", "mmengine", "mmcv", "mmseg", "captum"}


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, set[str]]:
    """``bbam-captum argv`` in a fresh interpreter: its exit code, its messages, and the top-level
    packages it imported (from ``-X importtime``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "bbam_captum.cli.main", *argv], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    messages = "\n".join(line for line in lines if not line.startswith("import time:"))
    return proc.returncode, proc.stdout + messages, imported


@pytest.mark.parametrize("argv", [["--help"], *([command, "--help"] for command in
                                                ("synth", "explain", "generate", "labels", "self-label", "evaluate",
                                                 "report"))])
def test_help_imports_no_torch(argv, tmp_path):
    code, output, imported = run_cli(argv, tmp_path)
    assert code == 0, output
    assert "usage: bbam-captum" in output
    assert not imported & HEAVY, f"bbam-captum {' '.join(argv)} imported {sorted(imported & HEAVY)}"


@pytest.mark.parametrize("argv, message", [
    (["generate", "--ann", "missing.json", "--img-dir", ".", "--out", "out"], "COCO file not found: missing.json"),
    (["explain", "missing.png", "--out", "fig.png"], "image not found: missing.png"),
    (["labels", "--out", "out"], "run.json not found"),
    (["self-label", "--run", "out", "--config", "missing.py", "--checkpoint", "c.pth", "--out", "o2"],
     "--config missing.py: no such file"),
    (["evaluate", "--pred", "out", "--gt", "missing.json"], "not found:"),
    (["generate", "--ann", "a.json", "--img-dir", ".", "--out", "out", "--steps", "0"], "--steps must be"),
])
def test_input_errors_answer_without_torch(argv, message, tmp_path):
    code, output, imported = run_cli(argv, tmp_path)
    assert code == 2, output
    assert message in output
    assert not imported & HEAVY, f"bbam-captum {' '.join(argv)} imported {sorted(imported & HEAVY)}"


def test_the_check_sees_torch(tmp_path):
    """The import list is read right: the package's lazy names still load torch when asked for."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import bbam_captum; bbam_captum.BBAM"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert any(line.rsplit("|", 1)[1].strip() == "torch" for line in proc.stderr.splitlines()
               if line.startswith("import time:"))
