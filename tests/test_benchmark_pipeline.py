"""The end-to-end benchmark's smallest case: labels, `mim train` of both models, scores."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.pipeline import BINARY, half_items, main, write_half
from bbam_captum.io.layout import RunLayout


def test_true_masks_and_filled_boxes_are_written_as_they_are():
    # no rule that reads the image may touch the true masks (opening holes would cut a fill that
    # looks like its surroundings out of them)
    assert not BINARY.needs_image


@pytest.mark.slow
def test_quick_pipeline_smallest_case_trains_evaluates_and_resumes(tmp_path):
    args = ["--out", str(tmp_path), "--sources", "bbam,gt,bbam_self", "--num-train", "3", "--num-val", "2",
            "--iters", "2", "--bbam-steps", "3", "--seeds", "0"]
    main(args)
    rows = {r["label_source"]: r for r in json.loads((tmp_path / "pipeline_shapes.json").read_text())}
    assert set(rows) == {"bbam", "gt", "bbam_self"}
    assert {r["seed"] for r in rows.values()} == {0}
    # the writer turns true masks back into exactly the true masks; BBAM's 3-step maps are not
    assert rows["gt"]["label_instance_miou"] == pytest.approx(1.0)
    assert rows["bbam"]["label_instance_miou"] < 0.99
    for row in rows.values():
        for key in ("semantic_miou", "mask_ap", "mask_ap50"):
            assert 0.0 <= row[key] <= 1.0, (key, row)
        assert row["train_minutes"] > 0
        # each class's IoU, read from mmseg's table: background and the world's classes
        assert {"background", "ring", "frame"} <= set(row["semantic_class_iou"])
        assert all(0.0 <= v <= 1.0 for v in row["semantic_class_iou"].values())
    runs = tmp_path / "work" / "shapes" / "runs"
    # a schedule other than the full scale's keeps runs of its own (suffix _i<iterations>)
    for run in ("bbam_seg_s0", "bbam_inst_s0", "gt_seg_s0", "gt_inst_s0", "bbam_self_seg_s0", "bbam_self_inst_s0"):
        assert (runs / f"{run}_i2" / "work_dir" / "iter_2.pth").is_file()  # mim train really ran
    # the self-training round's labels are the masks of bbam's Mask R-CNN
    teacher = json.loads((tmp_path / "work" / "shapes" / "labels" / "bbam_self" / "teacher.json").read_text())
    assert teacher["all"]["run"] == "bbam_inst_s0_i2"
    assert 0.0 <= rows["bbam_self"]["label_instance_miou"] < 0.99
    table = (tmp_path / "pipeline_shapes.md").read_text()
    assert "| bbam |" in table and "| gt |" in table and "Semantic IoU per class" in table

    # a rerun finds every result and trains nothing
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("work/shapes/runs/*/result.json")}
    main(args)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("work/shapes/runs/*/result.json")} == stamps

    # another schedule of one model only: its own runs, the 2-iteration results untouched
    main([*args, "--sources", "gt", "--seg-iters", "3", "--models", "seg", "--name", "seg3"])
    assert (runs / "gt_seg_s0_i3" / "work_dir" / "iter_3.pth").is_file()
    assert not (runs / "gt_inst_s0_i3").exists()
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("work/shapes/runs/*_i2/result.json")} == stamps
    (row,) = json.loads((tmp_path / "pipeline_seg3.json").read_text())
    assert "semantic_miou" in row and "mask_ap" not in row
    assert "| gt | 1.000 |" in (tmp_path / "pipeline_seg3.md").read_text()

    # the same schedule on other labels (one more train image) trains anew instead of reusing its result
    before = (runs / "gt_seg_s0_i3" / "result.json").stat().st_mtime_ns
    main([*args, "--sources", "gt", "--seg-iters", "3", "--models", "seg", "--name", "seg3", "--num-train", "4"])
    assert (runs / "gt_seg_s0_i3" / "result.json").stat().st_mtime_ns != before


@pytest.mark.slow
def test_a_stopped_training_resumes_from_its_last_checkpoint(tmp_path):
    args = ["--out", str(tmp_path), "--sources", "gt", "--num-train", "3", "--num-val", "2", "--seg-iters", "40",
            "--models", "seg", "--seeds", "0"]
    run = tmp_path / "work" / "shapes" / "runs" / "gt_seg_s0_i40"
    saved = run / "work_dir" / "last_checkpoint"
    benchmark = subprocess.Popen([sys.executable, "-m", "benchmarks.pipeline", *args], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not saved.is_file():  # the first checkpoint (at the first validation, iteration 10)
        assert benchmark.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    os.killpg(benchmark.pid, signal.SIGKILL)  # the benchmark and its mim train, as a stopped session ends them
    benchmark.wait()
    assert not (run / "result.json").exists()
    at = int(Path(saved.read_text().strip()).stem.split("_")[1])
    assert 0 < at < 40

    main(args)
    (row,) = json.loads((tmp_path / "pipeline_shapes.json").read_text())
    assert row["resumed"] and row["train_minutes"] > 0
    assert f"resumed epoch: 0, iter: {at}" in (run / "train.log").read_text()
    # each validation step once, the last one at the end of the schedule
    steps = [step for step, _ in row["semantic_miou_curve"]]
    assert steps == sorted(set(steps)) and steps[-1] == 40

    # stopped during its last validation, after the last checkpoint: the one before is resumed,
    # so the last validation runs again
    (run / "result.json").unlink()
    main(args)
    assert "resumed epoch: 0, iter: 30" in (run / "train.log").read_text()
    (row,) = json.loads((tmp_path / "pipeline_shapes.json").read_text())
    assert [step for step, _ in row["semantic_miou_curve"]] == steps


def test_unknown_label_source_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--sources", "bbam,masks"])


def test_halves_partition_the_labels_and_their_configs_train_on_them(tmp_path):
    """bbam_cross's teachers: each trains on one half of bbam's labels, through a config over bbam's own."""
    from mmengine.config import Config

    labels = tmp_path / "bbam"
    layout = RunLayout(labels)
    layout.coco_instances.parent.mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in (5, 2, 9, 4, 7)]
    annotations = [{"id": 10 * i + k, "image_id": i, "category_id": 1} for i in (5, 2, 9, 4, 7) for k in range(2)]
    layout.coco_instances.write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    layout.coco_config.write_text("train_dataloader = dict(dataset=dict(ann_file='all.json', data_root=''))\n")
    ids = [i["id"] for i in images]
    assert half_items(ids, 0) == [5, 9, 7] and half_items(ids, 1) == [2, 4]
    seen = []
    for half in (0, 1):
        out = write_half(labels, set(half_items(ids, half)), tmp_path / f"half{half}")
        written = json.loads(RunLayout(out).coco_instances.read_text())
        kept = [i["id"] for i in written["images"]]
        assert kept == half_items(ids, half)
        assert {a["image_id"] for a in written["annotations"]} == set(kept)
        assert len(written["annotations"]) == 2 * len(kept)
        config = Config.fromfile(RunLayout(out).coco_config)
        assert config.train_dataloader.dataset.ann_file == str(RunLayout(out).coco_instances.resolve())
        assert config.train_dataloader.dataset.data_root == ""  # the rest of bbam's config is kept
        seen += kept
    assert sorted(seen) == sorted(ids)
    assert json.loads(layout.coco_instances.read_text())["images"] == images  # bbam's labels untouched
