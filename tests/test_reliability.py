"""No input damages the user's data or labels silently (one test per case of the reliability
review, then a fuzz test of corrupted COCO files and images)."""
from __future__ import annotations

import copy
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _files import file_tree
from bbam_captum.cli._common import load_cli_detector
from bbam_captum.cli.main import build_parser, main
from bbam_captum.errors import InputError

STEPS = ["--steps", "2"]




def _write_ann(data: Path, ann: dict, name: str = "ann.json") -> Path:
    path = data / name
    path.write_text(json.dumps(ann))
    return path


def _generate(ann_path: Path, img_dir: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--ann", str(ann_path), "--img-dir", str(img_dir), "--out", str(out), *STEPS, *extra])


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _consistent(summary: dict) -> None:
    assert summary["images"] == summary["images_labelled"] + summary["images_failed"]
    assert summary["boxes"] == summary["boxes_labelled"] + summary["boxes_failed"]


# 1. file names never decide where outputs go
def test_absolute_and_parent_file_names_write_inside_out_only(small, tmp_path):
    data, ann = small
    (data / "elsewhere").mkdir()
    first, second = ann["images"]
    shutil.move(data / "images" / second["file_name"], data / "elsewhere" / second["file_name"])
    first["file_name"] = str((data / "images" / first["file_name"]).resolve())  # absolute
    second["file_name"] = f"../elsewhere/{second['file_name']}"               # leaves the image folder
    ann_path = _write_ann(data, ann)
    before = file_tree(tmp_path)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out) == 0
    after = file_tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == before  # inputs untouched, nothing else
    labels = sorted(p.name for p in (out / "mmseg" / "labels").iterdir())
    assert labels == [f"{first['id']}.png", f"{second['id']}.png"]
    for name in (out / "mmseg" / "train.txt").read_text().split():
        assert (out / "mmseg" / "images" / f"{name}.png").resolve().is_file()


def test_inputs_inside_the_output_folder_are_refused(small, tmp_path, capsys):
    data, ann = small
    ann_path = _write_ann(data, ann)
    out = data.parent  # OUT/mmseg, OUT/coco ... would be written beside the inputs: fine
    (out / "coco").mkdir()
    shutil.copy(ann_path, out / "coco" / "instances.json")
    assert _generate(out / "coco" / "instances.json", data / "images", out) == 2
    assert "lies inside the output folder" in capsys.readouterr().err


# 2. resume is keyed by what made the maps
def test_resume_recomputes_what_changed(small, tmp_path, capsys):
    data, ann = small
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out) == 0
    first_id, second_id = (i["id"] for i in ann["images"])
    mtime = {p.name: p.stat().st_mtime_ns for p in (out / "maps").glob("*.npz")}

    boxes = [a for a in ann["annotations"] if a["image_id"] == first_id]
    deleted = boxes[0]["id"]
    ann["annotations"].remove(boxes[0])
    added = dict(boxes[-1], id=max(a["id"] for a in ann["annotations"]) + 100)
    ann["annotations"].append(added)
    _write_ann(data, ann)
    assert _generate(ann_path, data / "images", out) == 0
    assert _summary(out)["images_computed_this_run"] == 1
    assert (out / "maps" / f"{second_id}.npz").stat().st_mtime_ns == mtime[f"{second_id}.npz"]
    saved = np.load(out / "maps" / f"{first_id}.npz")["ann_ids"].tolist()
    assert deleted not in saved and added["id"] in saved
    labelled = {a["id"] for a in json.loads((out / "coco" / "instances.json").read_text())["annotations"]}
    assert deleted not in labelled and added["id"] in labelled

    assert main(["generate", "--ann", str(ann_path), "--img-dir", str(data / "images"), "--out", str(out),
                 "--steps", "3"]) == 0
    summary = _summary(out)
    assert summary["images_computed_this_run"] == 2 and summary["bbam_settings"]["steps"] == 3
    assert all(r["steps"] == 3 for p in (out / "maps").glob("*.npz") for r in json.loads(str(np.load(p)["records"])))

    # labels from maps that no longer fit the COCO file: reported, not labelled
    ann["annotations"] = [a for a in ann["annotations"] if a["id"] != added["id"]]
    _write_ann(data, ann)
    assert main(["labels", "--out", str(out), "--no-crf"]) == 1
    reasons = [f["reason"] for f in _summary(out)["failures"]]
    assert any("rerun generate" in r for r in reasons)
    assert not (out / "mmseg" / "labels" / f"{first_id}.png").exists()

    capsys.readouterr()
    assert _generate(ann_path, data / "images", out, "--steps", "3", "--force") == 0
    assert _summary(out)["images_computed_this_run"] == 2


def test_a_changed_image_is_recomputed(small, tmp_path):
    data, ann = small
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out) == 0
    path = data / "images" / ann["images"][1]["file_name"]
    Image.fromarray(255 - np.array(Image.open(path))).save(path)
    assert _generate(ann_path, data / "images", out) == 0
    assert _summary(out)["images_computed_this_run"] == 1


# 3. duplicate ids are a malformed file, found before anything loads or is written
@pytest.mark.parametrize("section", ["images", "annotations", "categories"])
def test_duplicate_ids_exit_2_before_any_work(small, tmp_path, capsys, monkeypatch, section):
    data, ann = small
    ann[section].append(copy.deepcopy(ann[section][0]))
    ann_path = _write_ann(data, ann)
    _forbid_detector_loading(monkeypatch)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out) == 2
    err = capsys.readouterr().err
    assert f"{section}[{len(ann[section]) - 1}]: duplicate id" in err and str(ann_path) in err
    assert not out.exists()


def _must_not_load(*args, **kwargs):
    raise AssertionError("the detector was loaded before the input was checked")


def _forbid_detector_loading(monkeypatch) -> None:
    """Makes a detector load fail the test, where the command line looks the loaders up:
    :func:`bbam_captum.cli._common.load_cli_detector` imports them from their module when it runs
    (patching ``bbam_captum.load_detector`` would not reach it)."""
    import bbam_captum.detectors.loading as loading

    monkeypatch.setattr(loading, "load_detector", _must_not_load)
    monkeypatch.setattr(loading, "load_torchvision_detector", _must_not_load)


@pytest.mark.parametrize("argv", [[], ["--torchvision", "fasterrcnn_resnet50_fpn", "--checkpoint", "w.pth"]])
def test_forbidding_detector_loads_reaches_the_command_line(monkeypatch, argv):
    """The guard above sees the command line's loads, so the tests that use it can fail."""
    _forbid_detector_loading(monkeypatch)
    args = build_parser().parse_args(["explain", "image.png", "--out", "f.png", *argv])
    with pytest.raises(AssertionError, match="loaded before the input was checked"):
        load_cli_detector(args)


# 4. pixel data is read as it is
def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from bbam_captum.io import read_image

    grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "grey16.png")  # 16-bit grey PNG
    image = read_image(tmp_path / "grey16.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert torch.equal(image[0], torch.from_numpy(grey.astype(np.uint8)))
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(InputError, match="float"):
        read_image(tmp_path / "float.tif")


def test_api_refuses_images_in_zero_to_one(random_detector):
    from bbam_captum import BBAM

    image = torch.rand(3, 64, 64)
    with pytest.raises(ValueError, match="0..255"):
        BBAM(random_detector).attribute(image, torch.tensor([8.0, 8.0, 40.0, 40.0]), target=0, steps=1)
    maps = BBAM(random_detector).attribute(image * 255, torch.tensor([8.0, 8.0, 40.0, 40.0]), target=0, steps=1,
                                           num_proposals=8)
    assert maps.shape == (1, 1, 64, 64)


# 5. a box that was left out is ignore in the semantic labels
def test_failed_boxes_are_ignore_not_background(small, tmp_path):
    data, ann = small
    image_id = ann["images"][0]["id"]
    lost = next(a for a in ann["annotations"] if a["image_id"] == image_id)
    lost["category_id"] = 99
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 1
    summary = _summary(out)
    assert any(f.get("ann_id") == lost["id"] for f in summary["failures"])
    label = np.array(Image.open(out / "mmseg" / "labels" / f"{image_id}.png"))
    x, y, w, h = lost["bbox"]
    window = label[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))]
    assert (window == 255).any() and not (window == 0).any()


# 6. annotations of no listed image are counted and recorded
def test_dangling_annotations_are_recorded(small, tmp_path):
    data, ann = small
    ann["annotations"][0]["image_id"] = 4242
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 1
    summary = _summary(out)
    failure = next(f for f in summary["failures"] if f.get("ann_id") == ann["annotations"][0]["id"])
    assert "4242" in failure["reason"]
    assert summary["boxes"] == len(ann["annotations"]) and summary["boxes_failed"] == 1
    _consistent(summary)


# 7. one label per image, whatever the file names
def test_same_stem_and_mixed_suffixes_get_their_own_labels(small, tmp_path):
    from mmengine.config import Config
    from mmseg.datasets import BaseSegDataset

    data, ann = small
    first, second = ann["images"]
    Image.open(data / "images" / second["file_name"]).save(data / "images" / "x.jpg", quality=95)
    shutil.move(data / "images" / first["file_name"], data / "images" / "x.png")
    first["file_name"], second["file_name"] = "x.png", "x.jpg"
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    assert sorted((out / "mmseg" / "train.txt").read_text().split()) == sorted([str(first["id"]), str(second["id"])])
    cfg = Config.fromfile(out / "mmseg" / "config.py").train_dataloader.dataset
    seg = BaseSegDataset(ann_file=cfg.ann_file, data_prefix=cfg.data_prefix, img_suffix=cfg.img_suffix,
                         seg_map_suffix=cfg.seg_map_suffix, metainfo=cfg.metainfo, pipeline=[], lazy_init=False)
    pairs = {Path(seg[i]["img_path"]).resolve(): Path(seg[i]["seg_map_path"]) for i in range(len(seg))}
    assert set(pairs) == {(data / "images" / "x.png").resolve(), (data / "images" / "x.jpg").resolve()}
    assert all(p.is_file() for p in pairs.values()) and len(set(pairs.values())) == 2


# 8. evaluate checks that prediction and truth belong together
def test_evaluate_refuses_another_datasets_truth_and_truth_without_masks(small, tmp_path, capsys):
    from bbam_captum.synth import WorldConfig, write_dataset

    data, ann = small
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    assert main(["evaluate", "--pred", str(out), "--gt", str(ann_path)]) == 0
    other = write_dataset(tmp_path / "other", 2, seed=7, config=WorldConfig(image_size=80, max_object_size=60),
                          show_progress=False)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--gt", str(other)]) == 2
    assert "different images" in capsys.readouterr().err
    boxes_only = copy.deepcopy(ann)
    for a in boxes_only["annotations"]:
        del a["segmentation"]
    assert main(["evaluate", "--pred", str(out), "--gt", str(_write_ann(data, boxes_only, "boxes.json"))]) == 2
    assert "no mask" in capsys.readouterr().err


# 9. input errors exit 2 with a message naming file and item, before the detector loads
@pytest.mark.parametrize("edit, message", [
    (lambda a: a["annotations"][1].update(bbox=None), "annotations[1] (id {a1}): 'bbox' must be"),
    (lambda a: a["images"][0].update(width="96"), "images[0] (id {i0}): 'width' must be an integer"),
    (lambda a: a["categories"][2].pop("id"), "categories[2]: 'id' must be an integer"),
])
def test_malformed_items_exit_2_naming_the_item(small, tmp_path, capsys, monkeypatch, edit, message):
    data, ann = small
    edit(ann)
    ann_path = _write_ann(data, ann)
    _forbid_detector_loading(monkeypatch)
    assert _generate(ann_path, data / "images", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message.format(a1=ann["annotations"][1]["id"], i0=ann["images"][0]["id"]) in err and str(ann_path) in err


def test_bad_arguments_exit_2_before_the_detector_loads(small, tmp_path, capsys, monkeypatch):
    data, ann = small
    ann_path = _write_ann(data, ann)
    _forbid_detector_loading(monkeypatch)
    out = tmp_path / "out"
    cases = [(["--steps", "0"], "--steps must be at least 1"), (["--l1-coef", "nan"], "--l1-coef"),
             (["--device", "tpu9"], "--device"), (["--theta-fg", "2"], "theta_bg <= theta_fg")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "no CUDA GPU"))
    for extra, message in cases:
        assert main(["generate", "--ann", str(ann_path), "--img-dir", str(data / "images"), "--out", str(out),
                     *extra]) == 2, extra
        assert message in capsys.readouterr().err
        assert not out.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert _generate(ann_path, data / "images", a_file) == 2
    assert "existing file" in capsys.readouterr().err and a_file.read_text() == "keep me"
    assert _generate(ann_path, data / "images", a_file / "below") == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_exits_2(small, tmp_path, capsys):
    data, ann = small
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert _generate(_write_ann(data, ann), data / "images", locked / "out") == 2
    assert "cannot be written" in capsys.readouterr().err


def test_explain_on_a_truncated_image_exits_2(small, tmp_path, capsys):
    data, ann = small
    src = (data / "images" / ann["images"][0]["file_name"]).read_bytes()
    (tmp_path / "cut.png").write_bytes(src[: len(src) // 2])
    assert main(["explain", str(tmp_path / "cut.png"), "--out", str(tmp_path / "f.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err


# 10. the smaller ones
def test_boxes_of_failed_images_count_as_failed(small, tmp_path):
    data, ann = small
    missing = ann["images"][0]
    (data / "images" / missing["file_name"]).unlink()
    out = tmp_path / "out"
    assert _generate(_write_ann(data, ann), data / "images", out, "--no-crf") == 1
    summary = _summary(out)
    n_missing = sum(a["image_id"] == missing["id"] for a in ann["annotations"])
    assert summary["boxes_failed"] == n_missing and summary["images_failed"] == 1
    _consistent(summary)


def test_maps_files_hold_no_wall_clock_time(small, tmp_path):
    data, ann = small
    ann_path = _write_ann(data, ann)
    runs = []
    for name in ("a", "b"):
        assert _generate(ann_path, data / "images", tmp_path / name, "--no-crf") == 0
        runs.append({p.name: p.read_bytes() for p in (tmp_path / name / "maps").glob("*.npz")})
        assert "seconds" not in np.load(next((tmp_path / name / "maps").glob("*.npz"))).files
    assert runs[0] == runs[1] and len(runs[0]) == 2
    assert _summary(tmp_path / "a")["timings"]["bbam_seconds"] > 0


def test_explain_out_and_negative_boxes(small, tmp_path, capsys):
    from conftest import DETECTOR_CONFIG

    data, ann = small
    image = str(data / "images" / ann["images"][0]["file_name"])
    common = ["--config", str(DETECTOR_CONFIG), "--steps", "1"]
    assert main(["explain", image, "--boxes", "-5,3,40,40", "--out", str(tmp_path), *common]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["explain", image, "--boxes", "-5,3,40,40", "--out", str(tmp_path / "fig"), *common]) == 0
    assert f"wrote {tmp_path / 'fig.png'}" in capsys.readouterr().out and (tmp_path / "fig.png").is_file()
    assert main(["explain", image, "--boxes", "50,50,40,40", "--out", str(tmp_path / "g.png"), *common]) == 2
    assert "x2 > x1" in capsys.readouterr().err


def test_bbam_of_a_non_detector_says_what_it_needs():
    from bbam_captum import BBAM

    with pytest.raises(TypeError, match="needs a detector"):
        BBAM("faster_rcnn.py")


# fuzz: corrupted COCO files and images
_BAD_VALUES = [None, "x", "", [], {}, True, 1.5, -1, 0, float("nan"), float("inf"), -float("inf"), 1e308, 10 ** 30]


def _corrupt(ann: dict, rng: random.Random) -> object:
    """One random corruption of a COCO dict (or of its top level)."""
    ann = copy.deepcopy(ann)
    kind = rng.randrange(8)
    section = rng.choice(["images", "annotations", "categories"])
    entries = ann[section]
    entry = rng.choice(entries)
    if kind == 0:
        entry.pop(rng.choice(sorted(entry)))
    elif kind in (1, 2):
        entry[rng.choice(sorted(entry))] = rng.choice(_BAD_VALUES)
    elif kind == 3:
        entries.append(copy.deepcopy(entry))                               # a duplicate id
    elif kind == 4:
        target = rng.choice(ann["annotations"])
        target[rng.choice(["image_id", "category_id"])] = rng.choice([999, -3, 0])  # dangling
    elif kind == 5:
        target = rng.choice(ann["annotations"])
        target["bbox"] = [rng.choice([*_BAD_VALUES, 5.0, 50.0]) for _ in range(rng.choice([3, 4, 4, 5]))]
    elif kind == 6:
        ann[section] = rng.choice(_BAD_VALUES)
    else:
        return rng.choice([[], "coco", None, 7])
    return ann


def _write_corrupted(path: Path, content: object, rng: random.Random) -> None:
    text = json.dumps(content)
    if rng.random() < 0.05:
        text = text[: rng.randrange(len(text))]  # a truncated file
    path.write_text(text)


def test_fuzz_coco_reader_and_evaluate(small, tmp_path):
    """200 corrupted COCO files read directly, 100 as ground truth of ``evaluate``: each is read
    or refused with an InputError / exit 2, never a traceback, and no input changes."""
    from bbam_captum.pipeline.coco_input import read_coco
    from bbam_captum.synth.world import CLASSES

    data, ann = small
    ann_path = _write_ann(data, ann)
    out = tmp_path / "out"
    assert _generate(ann_path, data / "images", out, "--no-crf") == 0
    inputs = file_tree(data)
    rng = random.Random(16)
    outcomes = {"read": 0, "refused": 0}
    for i in range(200):
        bad = tmp_path / "fuzz.json"
        _write_corrupted(bad, _corrupt(ann, rng), rng)
        try:
            coco = read_coco(bad, CLASSES)
        except InputError as err:
            assert str(bad) in str(err)
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        seen = len(coco.failures) + sum(len(it.boxes) + len(it.failures) for it in coco.items)
        assert seen == len(json.loads(bad.read_text())["annotations"])  # every box labelled or recorded
    assert outcomes["read"] > 20 and outcomes["refused"] > 20, outcomes
    codes = []
    for i in range(100):
        bad = tmp_path / "gt.json"
        _write_corrupted(bad, _corrupt(ann, rng), rng)
        codes.append(main(["evaluate", "--pred", str(out), "--gt", str(bad)]))
    assert set(codes) <= {0, 2} and codes.count(2) > 20
    assert file_tree(data) == inputs
    assert {p.name for p in out.iterdir()} <= {"coco", "eval.json", "maps", "mmseg", "run.json", "summary.json"}


def _odd_images(path: Path, rng: np.random.Generator) -> list[Path]:
    """The same picture as truncated, empty, 16-bit, float, paletted, alpha, 1-bit and CMYK files."""
    rgb = np.array(Image.open(path).convert("RGB"))
    src = path.read_bytes()
    made = {"cut.png": None, "empty.png": None}
    (path.parent / "cut.png").write_bytes(src[: len(src) // 3])
    (path.parent / "empty.png").write_bytes(b"")
    grey = rgb.mean(2)
    Image.fromarray((grey * 257).astype(np.uint16)).save(path.parent / "i16.png")
    Image.fromarray((grey / 255).astype(np.float32)).save(path.parent / "f32.tif")
    Image.fromarray(rgb).convert("P").save(path.parent / "p.png")
    Image.fromarray(rgb).convert("RGBA").save(path.parent / "rgba.png")
    Image.fromarray(rgb).convert("1").save(path.parent / "bw.png")
    Image.fromarray(rgb).convert("CMYK").save(path.parent / "cmyk.jpg")
    return [path.parent / n for n in (*made, "i16.png", "f32.tif", "p.png", "rgba.png", "bw.png", "cmyk.jpg")]


def test_fuzz_images_and_generate_runs(small, tmp_path):
    """Odd images read or refused with an InputError; then 8 generate runs on corrupted COCO files and
    images end in 0/1 with a consistent summary or 2 with a message, writing only under OUT."""
    from bbam_captum.io import read_image

    data, ann = small
    odd = _odd_images(data / "images" / ann["images"][0]["file_name"], np.random.default_rng(0))
    for path in odd:
        try:
            image = read_image(path)
        except InputError as err:
            assert str(path) in str(err)
            continue
        assert image.dtype == torch.uint8 and image.shape == (3, 96, 96)
    rng = random.Random(61)
    base = copy.deepcopy(ann)
    for run in range(8):
        ann = _corrupt(base, rng) if run % 2 else copy.deepcopy(base)
        if isinstance(ann, dict) and isinstance(ann.get("images"), list) and ann["images"]:
            entry = ann["images"][-1]
            if isinstance(entry, dict):
                entry["file_name"] = rng.choice(odd).name
        ann_path = tmp_path / "fuzz.json"
        _write_corrupted(ann_path, ann, rng)
        before = file_tree(tmp_path)
        out = tmp_path / f"out{run}"
        code = _generate(ann_path, data / "images", out, "--steps", "1", "--no-crf")
        after = file_tree(tmp_path)
        assert {k: v for k, v in after.items() if not k.startswith(f"out{run}/")} == before
        assert code in (0, 1, 2)
        if code == 2:
            assert not out.exists()
            continue
        summary = _summary(out)
        _consistent(summary)
        assert (code == 1) == bool(summary["failures"])


def test_categories_that_match_only_by_position_are_refused_unless_asked(tmp_path):
    from bbam_captum.pipeline import read_coco
    from bbam_captum.synth import CLASSES, write_dataset

    ann = write_dataset(tmp_path / "data", 1, 1, show_progress=False)
    data = json.loads(ann.read_text())
    for category in data["categories"]:
        category["name"] = f"kind {category['id']}"  # same count as the classes, no name in common
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"by name.*pass by_order=True$"):  # read_coco's argument, not a flag
        read_coco(renamed, CLASSES)
    by_order = read_coco(renamed, CLASSES, by_order=True)
    assert by_order.class_of_category == {c["id"]: i for i, c in enumerate(sorted(data["categories"],
                                                                                   key=lambda c: c["id"]))}
    with pytest.raises(InputError, match="cannot be paired by order"):
        read_coco(renamed, CLASSES[:-1], by_order=True)


def test_generate_labels_names_its_own_argument_for_the_pairing_by_order(tmp_path, random_detector):
    from bbam_captum.detectors import MMDetTwoStageAdapter
    from bbam_captum.pipeline import generate_labels
    from bbam_captum.synth import write_dataset

    ann = write_dataset(tmp_path / "data", 1, 1, show_progress=False)
    data = json.loads(ann.read_text())
    classes = MMDetTwoStageAdapter(random_detector).class_names  # what generate_labels pairs the categories with
    data["categories"] = [{"id": i + 1, "name": f"kind {i + 1}"} for i in range(len(classes))]
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"by name.*pass categories_by_order=True$"):
        generate_labels(random_detector, renamed, ann.parent / "images", tmp_path / "out", show_progress=False)


def test_generate_refuses_categories_matching_by_position_and_takes_them_when_asked(tmp_path, capsys):
    from bbam_captum.synth import write_dataset

    ann = write_dataset(tmp_path / "data", 1, 1, show_progress=False)
    data = json.loads(ann.read_text())
    for category in data["categories"]:
        category["name"] = f"kind {category['id']}"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(data))
    args = ["generate", "--ann", str(renamed), "--img-dir", str(ann.parent / "images"), "--steps", "1"]
    assert main(args + ["--out", str(tmp_path / "refused")]) == 2
    assert "--categories-by-order" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "maps").exists()
    assert main(args + ["--out", str(tmp_path / "paired"), "--categories-by-order"]) == 0
    run = json.loads((tmp_path / "paired" / "run.json").read_text())
    assert run["categories_by_order"] is True
    assert main(["labels", "--out", str(tmp_path / "paired")]) == 0  # labels reads the pairing back from run.json
