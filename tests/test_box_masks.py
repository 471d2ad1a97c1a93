"""Masks a trained Mask R-CNN gives for given boxes (``MMDetTwoStageAdapter.box_masks``): the
self-training round's labels."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from bbam_captum import load_detector  # noqa: E402
from bbam_captum.detectors import MMDetTwoStageAdapter  # noqa: E402
from bbam_captum.detectors.base import UnsupportedDetectorError  # noqa: E402
from bbam_captum.errors import InputError  # noqa: E402

INST_CONFIG = Path(__file__).resolve().parents[1] / "mm_configs" / "inst" / "mask-rcnn_r18-slim_pseudo-labels.py"


def test_box_masks_are_the_mask_heads_own_pasted_probabilities():
    torch.manual_seed(0)
    model = load_detector(INST_CONFIG, None)  # the shipped Mask R-CNN, random weights
    adapter = MMDetTwoStageAdapter(model)
    image = torch.randint(0, 256, (3, 80, 120), generator=torch.Generator().manual_seed(1)).float()
    boxes = torch.tensor([[10.0, 12.0, 60.0, 70.0], [50.5, 5.0, 110.0, 40.0]])
    classes = torch.tensor([2, 5])
    masks = adapter.box_masks(image, boxes, classes)
    assert masks.shape == (2, 80, 120) and masks.dtype == torch.float32
    assert masks.min() >= 0 and masks.max() <= 1
    assert masks[0, 75:].abs().max() == 0 and masks[1, 45:].abs().max() == 0  # nothing far outside its box
    assert masks[0, 20:60, 20:50].min() > 0  # a random head's probabilities, about 0.5 inside

    # MMDetection's own mask prediction for the same boxes (soft masks: its threshold below 0)
    with torch.no_grad():
        x, (sx, sy) = adapter.preprocess(image[None])
        feats = model.extract_feat(x)
        meta = {"ori_shape": (80, 120), "img_shape": tuple(x.shape[-2:]), "scale_factor": (sx, sy)}
        given = InstanceData(bboxes=boxes * torch.tensor([sx, sy, sx, sy]), labels=classes, scores=torch.ones(2))
        model.roi_head.test_cfg = ConfigDict(mask_thr_binary=-1)
        own = model.roi_head.predict_mask(feats, [meta], [given], rescale=True)[0].masks
    assert own.dtype == torch.uint8 and own.shape == masks.shape
    assert (masks * 255 - own.float()).abs().max() <= 1.0  # uint8 truncation


def test_box_masks_need_a_mask_head(random_detector):
    with pytest.raises(UnsupportedDetectorError, match="mask head"):
        MMDetTwoStageAdapter(random_detector).box_masks(torch.zeros(3, 32, 32), torch.tensor([[1.0, 1, 9, 9]]),
                                                         torch.tensor([0]))


def _generate_run(tiny_synth, out: Path) -> None:
    from bbam_captum.cli.main import main

    assert main(["generate", "--ann", str(tiny_synth / "annotations.json"), "--img-dir", str(tiny_synth / "images"),
                 "--out", str(out), "--steps", "3"]) in (0, None)


def test_self_training_labels_are_the_models_masks_of_the_runs_boxes(tmp_path, tiny_synth):
    from bbam_captum.io import decode_mask, read_image
    from bbam_captum.labels import LabelSettings
    from bbam_captum.pipeline import relabel
    from bbam_captum.pipeline.self_training import self_training_labels

    run, out = tmp_path / "run", tmp_path / "self"
    _generate_run(tiny_synth, run)
    classes = json.loads((run / "run.json").read_text())["class_names"]
    torch.manual_seed(0)
    model = load_detector(INST_CONFIG, None)
    model.dataset_meta = {"classes": tuple(classes)}
    # the model's own decision as the rule (the default is the CRF chain, as for BBAM's maps)
    decision = LabelSettings(theta_fg=0.5, theta_bg=0.2, instance_threshold=0.5, blur_sigma=0.0, refine=False,
                             crf=False)
    summary = self_training_labels(run, model, out, labels=decision, show_progress=False)
    assert summary["failures"] == [] and summary["boxes_labelled"] == summary["boxes"] > 0
    first = json.loads((run / "coco" / "instances.json").read_text())
    second = json.loads((out / "coco" / "instances.json").read_text())
    assert [a["bbox"] for a in second["annotations"]] == [a["bbox"] for a in first["annotations"]]
    # each instance mask is the model's own decision (probability >= 0.5) for its box
    image_info = second["images"][0]
    anns = [a for a in second["annotations"] if a["image_id"] == image_info["id"]]
    image = read_image(tiny_synth / "images" / image_info["file_name"])
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    labels = torch.tensor([classes.index(next(c["name"] for c in second["categories"] if c["id"] == a["category_id"]))
                           for a in anns])
    probs = MMDetTwoStageAdapter(model).box_masks(image, boxes, labels)
    h, w = image.shape[-2:]
    assert (probs >= 0.5).any()  # a random head decides some pixels each way
    for ann, prob in zip(anns, probs):
        mask = torch.from_numpy(decode_mask(ann["segmentation"], h, w).astype(bool))
        decided = prob >= 0.5
        assert (mask & decided).sum() >= 0.98 * (mask | decided).sum()
    info = json.loads((out / "run.json").read_text())
    assert info["teacher"]["run"] == str(run.resolve()) and "detector_digest" not in info
    assert relabel(out, show_progress=False)["boxes_labelled"] == summary["boxes"]  # labels again from its maps

    # refused: the run itself, a generate run as out, a model of other classes
    generated = tmp_path / "generated"
    _generate_run(tiny_synth, generated)
    for target in (run, generated):
        with pytest.raises(InputError, match="folder of their own"):
            self_training_labels(run, model, target, show_progress=False)
    model.dataset_meta = {"classes": tuple(reversed(classes))}
    with pytest.raises(InputError, match="not the run's"):
        self_training_labels(run, model, tmp_path / "other", show_progress=False)


def test_self_label_command_refuses_a_detector_without_mask_head(tmp_path, tiny_synth, capsys):
    from bbam_captum.cli.main import main
    from bbam_captum.detectors import bundled_detector_files

    run = tmp_path / "run"
    _generate_run(tiny_synth, run)
    config, checkpoint = bundled_detector_files()  # Faster R-CNN: no mask head
    code = main(["self-label", "--run", str(run), "--config", str(config), "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "self")])
    assert code == 2
    assert "mask head" in capsys.readouterr().err
    code = main(["self-label", "--run", str(run), "--config", str(config), "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "self"), "--device", "bogus"])
    assert code == 2 and "--device 'bogus' is not a torch device" in capsys.readouterr().err
    assert not (tmp_path / "self" / "maps").exists() or not any((tmp_path / "self" / "maps").iterdir())
