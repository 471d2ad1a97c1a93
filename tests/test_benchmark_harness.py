"""The benchmarks' shared harness, and the benchmarks' use of the library: its public API only."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from bbam_captum import BBAMSettings
from benchmarks import harness

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_markdown_table_has_a_header_rule_and_a_line_per_row():
    lines = harness.markdown_table(["a", "b"], [[1, "x"], [2.5, "-"]])
    assert lines == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 | - |"]


def test_write_markdown_writes_and_returns_the_text(tmp_path):
    text = harness.write_markdown(tmp_path / "t.md", ["# t", "", *harness.markdown_table(["a"], [[1]])])
    assert text == (tmp_path / "t.md").read_text() == "# t\n\n| a |\n|---|\n| 1 |\n"


def test_changed_settings_are_the_fields_off_the_defaults():
    assert harness.changed_settings(BBAMSettings()) == {}
    assert harness.changed_settings(BBAMSettings(steps=300, context=None)) == {"steps": 300, "context": None}


def test_run_info_records_the_command_and_the_machine():
    run = harness.start_run("benchmarks.x", ["--out", "a b"], threads=1)
    meta = run.meta()
    assert meta["command"] == "python -m benchmarks.x --out 'a b'"
    assert meta["threads"] == 1 and meta["machine"].endswith("1 CPU thread") and "CPU, 1 thread" in meta["device"]
    assert set(meta) == {"command", "machine", "threads", "device", "date", "minutes"} and meta["minutes"] >= 0


def test_timed_adds_up_each_call_and_returns_its_result():
    synced = []
    timed = harness.Timed(lambda x: x * 2, lambda: synced.append(1))
    assert timed(2) == 4 and timed(3) == 6
    assert timed.seconds > 0 and len(synced) == 4  # before and after each call


def test_peak_memory_sees_an_allocation_in_the_block():
    with harness.peak_memory(torch.device("cpu")) as peak:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    assert 48 < peak.mb < 1024


def _sources() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in BENCHMARKS.glob("*.py")}


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_benchmark_uses_no_patch_exec_or_private_library_module(name):
    tree = _sources()[name]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            assert node.module != "unittest" and "mock" not in node.module, (name, node.module)
            assert not any(part.startswith("_") for part in node.module.split(".")), (name, node.module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("exec", "eval"), name
        if isinstance(node, ast.ClassDef):  # a subclass overrides no private method of its base
            private = [f.name for f in node.body if isinstance(f, ast.FunctionDef)
                       and f.name.startswith("_") and not f.name.startswith("__")]
            assert not private, (name, node.name, private)


def test_benchmarks_import_each_other_without_a_cycle():
    imports = {name: {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                      and node.level == 1 and node.module} for name, tree in _sources().items()}

    def reaches(start: str, target: str, seen: frozenset = frozenset()) -> bool:
        return any(m == target or (m not in seen and reaches(m, target, seen | {m})) for m in imports.get(start, ()))

    assert not [name for name in imports if reaches(name, name)]
