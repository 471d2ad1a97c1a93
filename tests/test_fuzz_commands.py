"""Property-based fuzz of every command and its inputs (issue 27).

For every case: the exit code is 0, 1 or 2, no exception escapes (no traceback), every input
file is byte-identical afterwards, and nothing is written outside the command's output folder.
The default run takes few examples on two 96 px images with one BBAM step; ``-m slow`` goes wide.
"""
from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from _files import file_tree, two_image_dataset
from bbam_captum.cli.main import main

BAD = [None, "x", "", [], {}, True, -1, 0, 1.5, float("nan"), float("inf"), 1e308, 10 ** 30, 2 ** 63 - 1]
NUMBERS = ["0", "-1", "1", "2", "nan", "inf", "-inf", "1e308", "99999999999"]
CASES = {"count": 0}


@pytest.fixture(scope="module")
def base(tiny_synth, tmp_path_factory) -> Path:
    """``data/`` (two images, ann.json) and ``run/``, a generate run on it (one step, no CRF)."""
    root = tmp_path_factory.mktemp("fuzz_base")
    data = root / "data"
    two_image_dataset(tiny_synth, data)
    assert main(["generate", "--ann", str(data / "ann.json"), "--img-dir", str(data / "images"),
                 "--out", str(root / "run"), "--steps", "1", "--no-crf"]) == 0
    return root


@st.composite
def coco_edits(draw) -> list[tuple]:
    """A few edits of a COCO file: (section, entry index, key, value)."""
    edits = []
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        key = draw(st.sampled_from({"images": ["id", "width", "height", "file_name"],
                                    "annotations": ["id", "bbox", "area", "iscrowd", "category_id", "image_id"],
                                    "categories": ["id", "name"]}[section]))
        value = draw(st.sampled_from(BAD + ["dup", [0, 0, 1, 1], [-5, -5, 1e9, 1e9], 1]))
        edits.append((section, draw(st.integers(0, 5)), key, value))
    return edits


def _edit_coco(path: Path, edits: list[tuple]) -> None:
    ann = json.loads(path.read_text())
    for section, index, key, value in edits:
        entries = ann[section]
        if not entries:
            continue
        entry = entries[index % len(entries)]
        entry[key] = copy.deepcopy(entries[0][key] if value == "dup" and key in entries[0] else value)
    path.write_text(json.dumps(ann))


IMAGE_EDITS = ["none", "1x1", "200x1", "2x2", "truncated", "empty", "exif", "other_picture"]
OUTPUT_EDITS = ["none", "maps_cut", "maps_zeroed", "maps_deleted", "run_json_list", "instances_list",
                "label_deleted", "summary_garbage", "classes_garbage", "mmseg_file"]


def _edit_image(path: Path, how: str) -> None:
    if how == "none":
        return
    if how in ("1x1", "200x1", "2x2"):
        w, h = (int(v) for v in how.split("x"))
        Image.new("RGB", (w, h), (90, 10, 200)).save(path, format="PNG")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.open(path).convert("RGB").save(path, format="JPEG", exif=exif)
    else:
        rgb = np.array(Image.open(path).convert("RGB"))
        Image.fromarray(np.ascontiguousarray(rgb[::-1])).save(path, format="PNG")


def _edit_output(run: Path, how: str) -> None:
    maps = sorted((run / "maps").glob("*.npz"))
    if how == "maps_cut":
        maps[0].write_bytes(maps[0].read_bytes()[:200])
    elif how == "maps_zeroed":
        raw = bytearray(maps[0].read_bytes())
        raw[len(raw) // 3:len(raw) // 3 + 50] = bytes(50)
        maps[0].write_bytes(bytes(raw))
    elif how == "maps_deleted":
        maps[0].unlink()
    elif how == "run_json_list":
        (run / "run.json").write_text("[1, 2]")
    elif how == "instances_list":
        (run / "coco" / "instances.json").write_text('{"images": 3}')
    elif how == "label_deleted":
        next((run / "mmseg" / "labels").glob("*.png")).unlink()
    elif how == "summary_garbage":
        (run / "summary.json").write_text("{{{")
    elif how == "classes_garbage":
        (run / "mmseg" / "classes.json").write_text('{"palette": "red"}')
    elif how == "mmseg_file":
        shutil.rmtree(run / "mmseg")
        (run / "mmseg").write_text("not a folder")


@st.composite
def cases(draw) -> dict:
    command = draw(st.sampled_from(["synth", "generate", "labels", "evaluate", "report", "explain"]))
    case = {"command": command, "coco": draw(coco_edits()), "image": draw(st.sampled_from(IMAGE_EDITS)),
            "output": draw(st.sampled_from(OUTPUT_EDITS)),
            "option": draw(st.sampled_from({
                "synth": ["--num-images", "--seed", "--image-size"],
                "generate": ["--steps", "--context", "--l1-coef", "--theta-fg", "--label-workers", "--early-stop",
                             "--window-padding", "--batch-images"],
                "labels": ["--theta-fg", "--theta-bg", "--instance-thr", "--blur", "--crf-max-pixels",
                           "--crf-fg-share", "--crf-window", "--label-workers"],
                "evaluate": [None], "report": ["--full-fill", "--claimed", "--odd-fill", "--min-positives"],
                "explain": ["--score-thr", "--steps", "--l1-coef"]}[command])),
            "value": draw(st.sampled_from(NUMBERS)),
            "target": draw(st.sampled_from(["new", "existing", "input", "file"]))}
    return case


def _argv(case: dict, root: Path) -> tuple[list[str], Path]:
    """The command line of a case, and the folder (or file) it may write."""
    data, run = root / "data", root / "run"
    image = data / "images" / sorted(p.name for p in (data / "images").iterdir())[0]
    option = [] if case["option"] is None else [case["option"], case["value"]]
    if case["option"] in ("--steps", "--label-workers") and case["value"] not in ("0", "-1", "nan", "inf", "-inf"):
        option = [case["option"], "1"]  # valid counts stay small: the case is about refusal, not work
    if case["option"] == "--num-images" and case["value"] not in ("0", "-1", "nan", "inf", "-inf", "1e308"):
        option = [case["option"], "1"]
    targets = {"new": root / "new", "existing": data, "input": data / "ann.json", "file": root / "a_file"}
    target = targets[case["target"]]
    command = case["command"]
    if command == "synth":
        return ["synth", str(target), "--image-size", "64", "--num-images", "1", *option], target
    if command == "generate":
        out = root / "new" if case["target"] != "file" else root / "a_file"
        return ["generate", "--ann", str(data / "ann.json"), "--img-dir", str(data / "images"), "--out", str(out),
                "--steps", "1", "--no-crf", *option], out
    if command == "labels":
        return ["labels", "--out", str(run), "--no-crf", *option], run
    if command == "evaluate":
        return ["evaluate", "--pred", str(run), "--gt", str(data / "ann.json")], run / "eval.json"
    if command == "report":
        return ["report", str(run), *option], run / "report"
    out = {"new": root / "fig.png", "existing": root / "fig.png", "input": image, "file": root / "a_file.png"}[
        case["target"]]
    return ["explain", str(image), "--boxes", "2,2,40,40", "--out", str(out), "--steps", "1", *option], out


def _run_case(case: dict, base: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(base / "data", root / "data")
        shutil.copytree(base / "run", root / "run", symlinks=True)
        (root / "a_file").write_text("keep")
        _edit_coco(root / "data" / "ann.json", case["coco"])
        _edit_image(sorted((root / "data" / "images").iterdir())[-1], case["image"])
        _edit_output(root / "run", case["output"])
        argv, writes = _argv(case, root)
        before = file_tree(root)
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's refusal of an option's type
            code = exit_.code
        after = file_tree(root)
        inside = str(writes.relative_to(root))
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        outside = {k for k in changed if k != inside and not k.startswith(inside + "/")}
        assert code in (0, 1, 2), (argv, code)
        assert not outside, (argv, sorted(outside)[:5])
        CASES["count"] += 1


FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WIDE = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _case(command: str, option: str | None = None, value: str = "1", target: str = "new", image: str = "none",
          output: str = "none", coco: list | None = None) -> dict:
    return {"command": command, "coco": coco or [], "image": image, "output": output, "option": option,
            "value": value, "target": target}


@FAST
@given(case=cases())
# the classes of the review, always among the default run's cases
@example(case=_case("explain", "--steps", target="input"))
@example(case=_case("synth", "--seed", target="file"))
@example(case=_case("synth", "--seed", target="existing"))
@example(case=_case("generate", "--steps", image="1x1"))
@example(case=_case("labels", "--theta-fg", "0.5", output="maps_zeroed"))
@example(case=_case("report", "--full-fill", "0.9", output="instances_list"))
@example(case=_case("evaluate", coco=[("annotations", 0, "area", float("nan"))]))
@example(case=_case("generate", "--context", "1e308"))  # a window grown past every float: the whole image
def test_fuzz_commands(base, case):
    _run_case(case, base)


@pytest.mark.slow
@WIDE
@given(case=cases())
def test_fuzz_commands_wide(base, case):
    _run_case(case, base)


def test_fuzz_cases_were_run():
    """The closing count of the cases run in this session (printed with ``-s``/``-rA``)."""
    print(f"fuzz cases run: {CASES['count']}")
    assert CASES["count"] >= 1
