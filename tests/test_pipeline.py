"""``bbam-captum generate / labels / evaluate`` end to end on a tiny synthetic set."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bbam_captum import BBAMSettings
from bbam_captum.cli.main import main

CLI = [sys.executable, "-m", "bbam_captum.cli.main"]
FAST = ["--steps", "4"]


def _generate_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--ann", str(data / "annotations.json"), "--img-dir", str(data / "images"),
            "--out", str(out), *FAST, *extra]


# Subprocess runs use one thread each, as torchrun's ranks do, so that outputs compare exactly.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def single_process(tiny_synth, tmp_path_factory) -> Path:
    """An uninterrupted one-process run in a subprocess, the reference for resumed and distributed runs."""
    out = tmp_path_factory.mktemp("single") / "out"
    result = subprocess.run(CLI + _generate_args(tiny_synth, out), capture_output=True, text=True, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def generated(single_process) -> Path:
    return single_process


def _maps(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p)["maps"] for p in sorted((out / "maps").glob("*.npz"))}


def _output_bytes(out: Path) -> dict[str, bytes]:
    """The bytes of every maps file, label PNG and instances.json of a run."""
    files = [*(out / "maps").glob("*.npz"), *(out / "mmseg" / "labels").glob("*.png"), out / "coco" / "instances.json",
             out / "mmseg" / "train.txt"]
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(files)}


def test_generate_writes_every_output(generated, tiny_synth):
    ann = json.loads((tiny_synth / "annotations.json").read_text())
    maps = _maps(generated)
    assert len(maps) == len(ann["images"])
    assert sum(m.shape[0] for m in maps.values()) == len(ann["annotations"])
    assert all(m.dtype == np.float16 and m.shape[1:] == (96, 96) for m in maps.values())
    labels = sorted((generated / "mmseg" / "labels").glob("*.png"))
    assert len(labels) == len(ann["images"])
    values = np.unique(np.concatenate([np.unique(np.array(Image.open(p))) for p in labels]))
    assert set(values.tolist()) <= set(range(8)) | {255}
    summary = json.loads((generated / "summary.json").read_text())
    assert summary["boxes_labelled"] == len(ann["annotations"]) and summary["failures"] == []
    assert {"bbam_seconds", "bbam_seconds_per_object"} <= set(summary["timings"])
    # every BBAM setting's value, defaults included, so that a changed default shows (and recomputes the maps)
    every = json.loads(json.dumps(asdict(BBAMSettings(steps=4))))
    assert json.loads((generated / "run.json").read_text())["bbam_settings"] == every == summary["bbam_settings"]


def test_mmseg_and_mmdet_datasets_read_the_labels(generated):
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config
    from mmseg.datasets import BaseSegDataset
    from pycocotools.coco import COCO

    seg_cfg = Config.fromfile(generated / "mmseg" / "config.py").train_dataloader.dataset
    seg = BaseSegDataset(ann_file=seg_cfg.ann_file, data_prefix=seg_cfg.data_prefix, img_suffix=".png",
                         seg_map_suffix=".png", metainfo=seg_cfg.metainfo, pipeline=[], lazy_init=False)
    assert len(seg) == 6 and Path(seg[0]["seg_map_path"]).exists()
    det_cfg = Config.fromfile(generated / "coco" / "config.py").train_dataloader.dataset
    det = CocoDataset(ann_file=det_cfg.ann_file, data_prefix=det_cfg.data_prefix, metainfo=det_cfg.metainfo,
                      pipeline=[], filter_cfg=None)
    assert len(det) == 6 and det[0]["instances"]
    coco = COCO(str(generated / "coco" / "instances.json"))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).shape == (96, 96)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mmseg", "mmdet"])
def test_mim_train_runs_on_the_labels(generated, kind, tmp_path):
    folder = "mmseg" if kind == "mmseg" else "coco"
    cmd = [str(Path(sys.executable).parent / "mim"), "train", kind, str(generated / folder / "config.py"),
           "--work-dir", str(tmp_path / "work"), "--cfg-options", "train_cfg.max_iters=2",
           "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
           "default_hooks.logger.interval=1"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "work" / "iter_2.pth").exists()


def test_labels_remakes_with_other_thresholds(generated, tmp_path):
    areas = {}
    for name, extra in (("default", []), ("high", ["--theta-fg", "0.9", "--theta-bg", "0.8", "--instance-thr", "0.9"])):
        copy = tmp_path / name
        shutil.copytree(generated, copy)
        assert main(["labels", "--out", str(copy), "--no-crf", *extra]) == 0  # the thresholds apply without the CRF
        areas[name] = sum(a["area"] for a in json.loads((copy / "coco" / "instances.json").read_text())["annotations"])
    assert areas["high"] < areas["default"]
    assert json.loads((tmp_path / "high" / "summary.json").read_text())["label_settings"]["theta_fg"] == 0.9


def test_relabel_from_python_writes_what_the_labels_command_writes(generated, tmp_path):
    from bbam_captum.labels import LabelSettings
    from bbam_captum.pipeline import relabel

    cli, python = tmp_path / "cli", tmp_path / "python"
    shutil.copytree(generated, cli)
    shutil.copytree(generated, python)
    assert main(["labels", "--out", str(cli), "--no-crf", "--theta-fg", "0.7"]) == 0
    summary = relabel(python, LabelSettings(crf=False, theta_fg=0.7), show_progress=False)
    assert summary["label_settings"]["theta_fg"] == 0.7 and summary["boxes_labelled"] == summary["boxes"]
    assert json.loads((python / "summary.json").read_text()) == json.loads((cli / "summary.json").read_text())
    assert _output_bytes(python) == _output_bytes(cli)
    assert _output_bytes(python) != _output_bytes(generated)  # other thresholds: other labels


def test_relabel_names_what_is_missing(tmp_path):
    from bbam_captum.errors import InputError
    from bbam_captum.pipeline import relabel

    with pytest.raises(InputError, match=r"run\.json not found"):
        relabel(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(InputError, match="is damaged"):
        relabel(tmp_path)
    with pytest.raises(InputError, match="label_workers must be >= 1, got 0"):
        relabel(tmp_path, label_workers=0)


def test_run_layout_names_every_file_a_run_writes(generated, tiny_synth):
    from bbam_captum.pipeline import RunLayout

    layout = RunLayout(generated)
    images = json.loads((tiny_synth / "annotations.json").read_text())["images"]
    named = {layout.run_file, layout.summary_file, layout.seg_split, layout.seg_classes, layout.seg_config,
             layout.coco_instances, layout.coco_config}
    for image in images:
        named |= {layout.maps_file(image["id"]), layout.time_file(image["id"]), layout.seg_label(image["id"]),
                  layout.seg_image(image["id"], Path(image["file_name"]).suffix)}
    written = {p for p in generated.rglob("*") if p.is_file()}
    assert written == named, f"not named by RunLayout: {sorted(written - named)}; missing: {sorted(named - written)}"


@pytest.mark.parametrize("switch, default", [("refine", True), ("crf", True)])
def test_crf_and_refinement_on_by_default_and_both_switch(generated, tmp_path, switch, default):
    assert json.loads((generated / "summary.json").read_text())["label_settings"][switch] is default
    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    assert main(["labels", "--out", str(copy), f"--{'no-' if default else ''}{switch}"]) == 0
    assert json.loads((copy / "summary.json").read_text())["label_settings"][switch] is not default
    before = json.loads((generated / "coco" / "instances.json").read_text())["annotations"]
    after = json.loads((copy / "coco" / "instances.json").read_text())["annotations"]
    assert [a["segmentation"] for a in after] != [a["segmentation"] for a in before]


def test_labels_rejects_crf_shares_out_of_order(generated, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    assert main(["labels", "--out", str(copy), "--crf-fg-share", "0.9", "--crf-bg-share", "0.5"]) == 2
    assert "crf_fg_share <= crf_bg_share" in capsys.readouterr().err


def test_labels_crf_pixel_budget_is_a_setting(generated, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    assert json.loads((generated / "summary.json").read_text())["label_settings"]["crf_max_pixels"] > 96 * 96
    assert main(["labels", "--out", str(copy), "--crf-max-pixels", str(48 * 48)]) == 0  # 96 px images on a 48 px grid
    assert json.loads((copy / "summary.json").read_text())["label_settings"]["crf_max_pixels"] == 48 * 48
    before = json.loads((generated / "coco" / "instances.json").read_text())["annotations"]
    after = json.loads((copy / "coco" / "instances.json").read_text())["annotations"]
    assert [a["segmentation"] for a in after] != [a["segmentation"] for a in before]
    assert main(["labels", "--out", str(copy), "--crf-max-pixels", "-1"]) == 2
    assert "crf_max_pixels must be >= 0" in capsys.readouterr().err


@pytest.mark.slow
def test_label_workers_write_the_same_files(generated, tmp_path, capsys):
    """Two worker processes (spawned) write byte for byte what one process writes."""
    outs = {}
    for workers in ("1", "2"):
        outs[workers] = tmp_path / workers
        shutil.copytree(generated, outs[workers])
        assert main(["labels", "--out", str(outs[workers]), "--label-workers", workers]) == 0
    files = sorted(p.relative_to(outs["1"]) for p in (outs["1"] / "mmseg" / "labels").iterdir())
    assert files and files == sorted(p.relative_to(outs["2"]) for p in (outs["2"] / "mmseg" / "labels").iterdir())
    for name in [*files, Path("coco") / "instances.json", Path("summary.json")]:
        assert (outs["1"] / name).read_bytes() == (outs["2"] / name).read_bytes(), name
    assert main(["labels", "--out", str(outs["1"]), "--label-workers", "0"]) == 2
    assert "--label-workers must be >= 1" in capsys.readouterr().err


def test_evaluate_scores_against_true_masks(generated, tiny_synth, capsys):
    assert main(["evaluate", "--pred", str(generated), "--gt", str(tiny_synth / "annotations.json")]) == 0
    scores = json.loads((generated / "eval.json").read_text())
    assert 0 <= scores["instance_miou"] <= 1 and 0 <= scores["semantic_miou"] <= 1
    assert "instance_miou" in capsys.readouterr().out


def test_evaluate_gives_one_for_true_masks(tiny_synth, tmp_path):
    """A 'prediction' made of the true masks scores 1: the metric can tell perfect from not."""
    from bbam_captum.labels import semantic_label
    from bbam_captum.io import decode_mask

    ann = json.loads((tiny_synth / "annotations.json").read_text())
    (tmp_path / "coco").mkdir()
    (tmp_path / "mmseg" / "labels").mkdir(parents=True)
    (tmp_path / "coco" / "instances.json").write_text(json.dumps(ann))
    for img in ann["images"]:
        objs = [a for a in ann["annotations"] if a["image_id"] == img["id"]]
        masks = np.array([decode_mask(a["segmentation"], 96, 96) for a in objs], bool).reshape(-1, 96, 96)
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in objs], np.float32).reshape(-1, 4)
        label = semantic_label(masks, np.zeros_like(masks), boxes, np.array([a["category_id"] - 1 for a in objs]))
        Image.fromarray(label).save(tmp_path / "mmseg" / "labels" / f"{img['id']}.png")
    from bbam_captum.metrics.pseudo_labels import evaluate_pseudo_labels

    scores = evaluate_pseudo_labels(tmp_path, tiny_synth / "annotations.json")
    assert scores["instance_miou"] == pytest.approx(1.0)
    assert scores["semantic_miou"] == pytest.approx(1.0)


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing(tiny_synth, single_process, tmp_path):
    uninterrupted = single_process
    out = tmp_path / "out"
    args = CLI + _generate_args(tiny_synth, out)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=ONE_THREAD)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "maps").glob("*.npz"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "maps").glob("*.npz")}
    assert 2 <= len(done_before) < 6, "the run should be killed midway"
    for path in (out / "maps").glob("*.npz"):  # a file under its final name is always whole
        assert np.load(path)["maps"].ndim == 3
    assert subprocess.run(args, capture_output=True, env=ONE_THREAD).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_computed_this_run"] == 6 - len(done_before)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "maps").glob("*.npz") if p.name in done_before} == done_before
    reference, resumed = _output_bytes(uninterrupted), _output_bytes(out)
    assert len(reference) == 2 * 6 + 2 and reference.keys() == resumed.keys()
    assert [k for k in reference if reference[k] != resumed[k]] == []  # byte-identical


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tiny_synth, single_process, tmp_path):
    out = tmp_path / "dist"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--nproc_per_node=2", "--master_port=29533", "-m", "bbam_captum.cli.main",
           *_generate_args(tiny_synth, out, "--launcher", "pytorch")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ONE_THREAD, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    reference, dist = _output_bytes(single_process), _output_bytes(out)
    assert len(reference) == 2 * 6 + 2 and reference.keys() == dist.keys()
    assert [k for k in reference if reference[k] != dist[k]] == []  # byte-identical


def _copy_dataset(src: Path, dst: Path) -> dict:
    shutil.copytree(src, dst)
    return json.loads((dst / "annotations.json").read_text())


def test_bad_items_are_recorded_and_the_run_goes_on(tiny_synth, tmp_path):
    data = tmp_path / "data"
    ann = _copy_dataset(tiny_synth, data)
    (data / "images" / ann["images"][0]["file_name"]).unlink()                    # missing image
    (data / "images" / ann["images"][1]["file_name"]).write_bytes(b"not a png")   # corrupt image
    ann["annotations"][-1]["bbox"] = [10, 10, 0, 5]                                 # degenerate box
    ann["annotations"][-2]["bbox"] = [500, 500, 10, 10]                             # outside its image
    ann["annotations"][-3]["category_id"] = 99                                      # unknown category
    (data / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    assert main(_generate_args(data, out)) == 1
    summary = json.loads((out / "summary.json").read_text())
    reasons = " | ".join(f["reason"] for f in summary["failures"])
    for expected in ("image file not found", "cannot read image", "degenerate box", "outside",
                     "unknown category id 99"):
        assert expected in reasons
    assert summary["images_labelled"] == 4 and summary["images_failed"] == 2


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"images": [], "annotations": {}}), "'annotations' must be a list"),
    (json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}),
     "images[0] (id 1): 'file_name' must be a non-empty string"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}], "categories": [],
                 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": None}]}),
     "annotations[0] (id 1): 'bbox' must be"),
])
def test_malformed_coco_file(tiny_synth, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    args = ["generate", "--ann", str(bad), "--img-dir", str(tiny_synth / "images"), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert message in capsys.readouterr().err
