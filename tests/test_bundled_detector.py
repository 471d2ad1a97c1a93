"""The bundled detector: loads with weights-only loading and finds objects it never saw."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bbam_captum import BBAM, load_detector
from bbam_captum.io import load_coco_image
from bbam_captum.detectors import bundled_detector_files
from bbam_captum.synth import write_dataset


@pytest.fixture(scope="module")
def bundled():
    return load_detector()


@pytest.fixture(scope="module")
def unseen_set(tmp_path_factory):
    """24 images at the training size, with a seed used neither in training nor in validation."""
    out = tmp_path_factory.mktemp("unseen")
    write_dataset(out, num_images=24, seed=4242, show_progress=False)
    return out


def test_checkpoint_is_small_and_weights_only():
    _, checkpoint = bundled_detector_files()
    assert checkpoint.stat().st_size <= 20 * 2**20
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"meta", "state_dict"}


def test_finds_objects_of_an_unseen_set(bundled, unseen_set):
    ann = json.loads((unseen_set / "annotations.json").read_text())
    adapter = BBAM(bundled).adapter
    results = []
    for info in ann["images"]:
        image, *_ = load_coco_image(ann, info, unseen_set / "images")
        det = adapter.detect(image, score_thr=0.05)
        for box, score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist()):
            results.append({"image_id": info["id"], "category_id": label + 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(unseen_set / "annotations.json"))
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap50 = evaluator.stats[1]
    assert ap50 >= 0.85, f"bundled detector AP50 {ap50:.3f} on an unseen synthetic set"
    assert np.isfinite(evaluator.stats[0])
