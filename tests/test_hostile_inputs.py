"""The second reliability round (issue 27): one test per class of what a hostile new user found.

Each test failed on the code before the fixes of that round: data damage (explain, synth), one
image failing the run, damaged maps files, silently wrong results (crowds, duplicate names, EXIF,
another dataset's truth, a replaced image), unchecked options and output folders, orphaned workers.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _files import file_tree, sha256
from bbam_captum.cli.main import main

STEPS = ["--steps", "2"]




def _write(data: Path, ann: dict, name: str = "ann.json") -> Path:
    (data / name).write_text(json.dumps(ann))
    return data / name


def _generate(ann_path: Path, img_dir: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--ann", str(ann_path), "--img-dir", str(img_dir), "--out", str(out), *STEPS, *extra])


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _must_not_load(*args, **kwargs):
    raise AssertionError("the detector must not load for an input the user must fix")


# 1. data damage: no command writes over an input or into a folder it did not make
def test_explain_refuses_to_write_its_figure_over_the_input(small, tmp_path, capsys, monkeypatch):
    import bbam_captum.detectors.loading as loading

    data, ann = small
    image = data / "images" / ann["images"][0]["file_name"]
    before = sha256(image)
    monkeypatch.setattr(loading, "load_detector", _must_not_load)
    (tmp_path / "link.png").symlink_to(image)
    for out in (image, data / "images" / ".." / "images" / image.name, tmp_path / "link.png"):
        assert main(["explain", str(image), "--boxes", "2,0,21,14", "--out", str(out), "--steps", "1"]) == 2
        assert "is the input file" in capsys.readouterr().err
    assert sha256(image) == before


def test_synth_refuses_a_folder_that_holds_files_unless_forced(tmp_path, capsys):
    out = tmp_path / "mydata"
    args = ["synth", str(out), "--num-images", "2", "--image-size", "64"]
    assert main(args + ["--seed", "1"]) == 0
    (out / "notes.txt").write_text("mine")
    before = file_tree(out)
    assert main(args + ["--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "would replace 3 of them" in err and "annotations.json" in err and "--force" in err
    assert file_tree(out) == before
    assert main(["synth", str(out), "--num-images", "1", "--image-size", "64", "--seed", "2", "--force"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png"]  # one dataset, not two mixed
    assert (out / "notes.txt").read_text() == "mine"
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    for target in (a_file, a_file / "below"):
        assert main(["synth", str(target), "--num-images", "1"]) == 2
        assert "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "keep"


# 2. each image is its own unit of failure
@pytest.mark.parametrize("size", [(1, 1), (200, 1), (2, 2)])
def test_a_tiny_image_fails_alone(small, tmp_path, size):
    """1 x 1 and 200 x 1 are too small for BBAM: recorded failures, the other images labelled. A
    2 x 2 image ended the run in the label step (the blur's reflected padding); now it is labelled."""
    data, ann = small
    tiny = dict(ann["images"][0], id=99, file_name="tiny.png", width=size[0], height=size[1])
    Image.new("RGB", size, (120, 30, 200)).save(data / "images" / "tiny.png")
    ann["images"].append(tiny)
    ann["annotations"].append(dict(ann["annotations"][0], id=999, image_id=99, bbox=[0, 0, size[0], size[1]]))
    out = tmp_path / "out"
    labelled_alone = size == (2, 2)
    for _ in range(2):  # a rerun ends the same way
        assert _generate(_write(data, ann), data / "images", out) == (0 if labelled_alone else 1)
        summary = _summary(out)
        assert summary["images_labelled"] == (3 if labelled_alone else 2)
        assert [f["image_id"] for f in summary["failures"]] == ([] if labelled_alone else [99])
        assert labelled_alone or "too small" in summary["failures"][0]["reason"]


def _damage(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "middle":   # a disk error inside the compressed maps: zlib.error or a bad CRC
        start = len(raw) // 3
        raw[start:start + 64] = bytes(64)
    elif how == "header":  # the .npy header of the maps, damaged before it was zipped: a tokenizer error
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        at = members["maps.npy"].index(b"{'descr'")
        members["maps.npy"] = members["maps.npy"][:at] + b"{'descr': (((" + members["maps.npy"][at + 13:]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        return
    else:                  # a partial copy
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["middle", "header", "cut"])
def test_a_damaged_maps_file_counts_as_missing(small, tmp_path, capsys, how):
    from bbam_captum.pipeline.generate import read_maps_file

    data, ann = small
    ann_path = _write(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    maps = out / "maps" / f"{ann['images'][0]['id']}.npz"
    good = maps.read_bytes()
    _damage(maps, how)
    assert read_maps_file(maps)[0] is None
    capsys.readouterr()
    assert main(["labels", "--out", str(out), "--no-crf"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and str(maps) in json.dumps(_summary(out)["failures"])
    assert main(["report", str(out)]) == 1
    assert "not shown" in capsys.readouterr().out
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0  # recomputed, not counted as done
    assert _summary(out)["images_computed_this_run"] == 1 and maps.read_bytes() == good


# 3. silently wrong results
def test_crowd_boxes_are_crowd_regions(small, tmp_path):
    data, ann = small
    crowd = next(a for a in ann["annotations"] if a["image_id"] == ann["images"][0]["id"])
    crowd["iscrowd"] = 1
    out = tmp_path / "out"
    assert _generate(_write(data, ann), data / "images", out, "--no-crf") == 0
    summary = _summary(out)
    assert summary["crowd_regions"] == 1 and summary["boxes"] == len(ann["annotations"]) - 1
    assert crowd["id"] not in np.load(out / "maps" / f"{crowd['image_id']}.npz")["ann_ids"].tolist()
    written = {a["id"]: a for a in json.loads((out / "coco" / "instances.json").read_text())["annotations"]}
    assert written[crowd["id"]]["iscrowd"] == 1 and written[crowd["id"]]["category_id"] == crowd["category_id"]
    assert sum(a["iscrowd"] for a in written.values()) == 1
    label = np.array(Image.open(out / "mmseg" / "labels" / f"{crowd['image_id']}.png"))
    x, y, w, h = (int(round(v)) for v in crowd["bbox"])
    assert not (label[y + 1:y + h - 1, x + 1:x + w - 1] == 0).any()  # never background: ignore or an object


def test_duplicate_category_names_are_refused(small, tmp_path, capsys):
    data, ann = small
    ann["categories"][1]["name"] = ann["categories"][0]["name"]
    assert _generate(_write(data, ann), data / "images", tmp_path / "out") == 2
    assert "share the name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_exif_orientation_is_applied_as_mmcv_applies_it(small, tmp_path):
    import mmcv

    from bbam_captum.io import read_image

    data, ann = small
    info = ann["images"][0]
    src = np.array(Image.open(data / "images" / info["file_name"]).convert("RGB"))[:, :80]  # 96 high, 80 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # stored as is, shown turned 90 degrees clockwise
    path = data / "images" / "turned.jpg"
    Image.fromarray(src).save(path, exif=exif, quality=95)
    ours = read_image(path).permute(1, 2, 0).numpy()
    theirs = mmcv.imfrombytes(path.read_bytes(), flag="color", channel_order="rgb")
    assert ours.shape == theirs.shape == (80, 96, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 3
    ann["images"][0] = dict(info, file_name="turned.jpg", width=96, height=80)
    ann["annotations"] = [dict(a, bbox=[1, 1, 40, 30]) if a["image_id"] == info["id"] else a
                          for a in ann["annotations"]]
    out = tmp_path / "out"
    assert _generate(_write(data, ann), data / "images", out, "--no-crf") == 0
    assert np.array(Image.open(out / "mmseg" / "labels" / f"{info['id']}.png")).shape == (80, 96)


def _same_shape_other_dataset(data: Path, ann: dict, root: Path) -> Path:
    """Another dataset with the same ids, file names and sizes, of other pictures (and masks)."""
    other = root / "other"
    (other / "images").mkdir(parents=True)
    for info in ann["images"]:
        rgb = np.array(Image.open(data / "images" / info["file_name"]).convert("RGB"))
        Image.fromarray(np.ascontiguousarray(rgb[::-1, ::-1])).save(other / "images" / info["file_name"])
    (other / "annotations.json").write_text(json.dumps(ann))
    return other / "annotations.json"


def test_scores_only_against_the_images_the_labels_were_made_from(small, tmp_path, capsys):
    data, ann = small
    ann_path = _write(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    assert main(["evaluate", "--pred", str(out), "--gt", str(ann_path)]) == 0
    other = _same_shape_other_dataset(data, ann, tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--gt", str(other)]) == 2
    assert "different images" in capsys.readouterr().err
    assert main(["report", str(out), "--gt", str(other)]) == 2
    assert "different images" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    replaced = data / "images" / ann["images"][1]["file_name"]
    shutil.copy(other.parent / "images" / replaced.name, replaced)  # a new picture under the old name
    assert main(["report", str(out)]) == 1
    assert "stale" in capsys.readouterr().out



def test_report_checks_the_truth_images_where_gt_img_dir_says(small, tmp_path, capsys):
    """As evaluate: a gt file away from its images is scored with a note; --gt-img-dir finds them."""
    data, ann = small
    ann_path = _write(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    alone = tmp_path / "elsewhere" / "annotations.json"
    alone.parent.mkdir()
    shutil.copy(ann_path, alone)
    other = _same_shape_other_dataset(data, ann, tmp_path)
    for command in (["report", str(out)], ["evaluate", "--pred", str(out)]):
        capsys.readouterr()
        assert main([*command, "--gt", str(alone)]) == 0
        assert "could not be compared by content" in capsys.readouterr().err
        assert main([*command, "--gt", str(alone), "--gt-img-dir", str(data / "images")]) == 0
        assert "could not be compared" not in capsys.readouterr().err
        assert main([*command, "--gt", str(alone), "--gt-img-dir", str(other.parent / "images")]) == 2
        assert "different images" in capsys.readouterr().err
        for folder, message in ((tmp_path / "nowhere", "no such folder"), (alone, "is a file"), ("", "is empty")):
            assert main([*command, "--gt", str(alone), "--gt-img-dir", str(folder)]) == 2
            assert message in capsys.readouterr().err
    assert main(["report", str(out), "--gt-img-dir", str(data / "images")]) == 2
    assert "pass --gt too" in capsys.readouterr().err

# 4. validation: numbers, options, output folders
@pytest.mark.parametrize("edit, message", [
    (lambda a: a["annotations"][0].update(iscrowd=2), "'iscrowd' must be 0 or 1"),
    (lambda a: a["annotations"][0].update(area=float("nan")), "'area' must be a finite number"),
    (lambda a: a["annotations"][0].update(area=-4), "'area' must be a finite number"),
])
def test_absurd_numbers_exit_2_naming_the_item(small, tmp_path, capsys, edit, message):
    data, ann = small
    edit(ann)
    assert _generate(_write(data, ann), data / "images", tmp_path / "out") == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["synth", "{out}", "--num-images", "1", "--seed", "-1"],
    ["synth", "{out}", "--num-images", "1", "--image-size", "100000000"],
    ["synth", "{out}", "--num-images", "10000000000"],
    ["explain", "{image}", "--out", "{out}/f.png", "--score-thr", "nan"],
    ["explain", "{image}", "--out", "{out}/f.png", "--score-thr", "-1"],
])
def test_options_at_their_bounds_exit_2(small, tmp_path, capsys, command):
    data, ann = small
    image = data / "images" / ann["images"][0]["file_name"]
    args = [c.format(out=tmp_path / "new", image=image) for c in command]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_an_output_subfolder_that_cannot_take_files_is_found_before_the_maps(small, tmp_path, capsys):
    data, ann = small
    out = tmp_path / "out"
    out.mkdir()
    (out / "mmseg").write_text("a file where a folder goes")
    assert _generate(_write(data, ann), data / "images", out) == 2
    assert "mmseg is a file" in capsys.readouterr().err
    assert not (out / "maps").exists()


# 5. workers die with their parent
_POOL_SCRIPT = """
import os, sys, time
from bbam_captum.pipeline.writers import label_pool
with label_pool(2) as pool:
    futures = [pool.submit(time.sleep, 120) for _ in range(2)]
    time.sleep(0.5)
    while len(pool._processes) < 2:
        time.sleep(0.1)
    print(" ".join(str(p) for p in pool._processes), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_label_workers_end_with_their_parent():
    parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if _alive(p)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their parent"


def test_label_options_at_their_bounds(small, tmp_path, capsys):
    data, ann = small
    out = tmp_path / "out"
    assert _generate(_write(data, ann), data / "images", out, "--no-crf") == 0
    assert main(["labels", "--out", str(out), "--crf-max-pixels", "1"]) == 2  # a 1-pixel CRF grid
    assert "crf_max_pixels" in capsys.readouterr().err
    assert main(["labels", "--out", str(out), "--crf-window", "-1"]) == 2
    assert "crf_window must lie in" in capsys.readouterr().err
    assert main(["labels", "--out", str(out), "--crf-window", "0.01"]) == 0  # a window of a pixel past each box
    assert main(["labels", "--out", str(out), "--no-crf", "--blur", "100"]) == 0  # a blur wider than the image
    assert _summary(out)["images_labelled"] == 2


def test_a_huge_l1_coef_is_refused_and_an_empty_map_still_draws(small, tmp_path, capsys):
    """Found by the fuzz test: --l1-coef 1e308 made NaN maps and the figure raised IndexError."""
    import torch

    from bbam_captum.visualization import explanation_figure

    data, ann = small
    image = data / "images" / ann["images"][0]["file_name"]
    assert main(["explain", str(image), "--boxes", "2,2,40,40", "--out", str(tmp_path / "f.png"), "--steps", "1",
                 "--l1-coef", "1e308"]) == 2
    assert "--l1-coef must be at most" in capsys.readouterr().err
    rgb = torch.zeros(3, 32, 32, dtype=torch.uint8)
    for empty in (torch.zeros(1, 1, 32, 32), torch.full((1, 1, 32, 32), float("nan"))):
        explanation_figure(rgb, torch.tensor([[2.0, 2.0, 20.0, 20.0]]), ["a"], empty).savefig(tmp_path / "e.png")
