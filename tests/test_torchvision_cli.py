"""torchvision detectors from the command line: ``--torchvision BUILDER --checkpoint FILE [--classes FILE]``."""
from __future__ import annotations

import argparse
import json

import pytest
import torch
from torchvision.models import detection

from bbam_captum.cli.main import main
from bbam_captum import BBAM
from bbam_captum.detectors import detector_digest, load_torchvision_detector
from bbam_captum.synth import CLASSES, WorldConfig, write_dataset

BUILDER = "fasterrcnn_mobilenet_v3_large_320_fpn"  # the smallest of torchvision's two-stage detectors


def _save(path, num_classes: int, wrap: bool = False):
    torch.manual_seed(0)
    model = getattr(detection, BUILDER)(weights=None, weights_backbone=None, num_classes=num_classes)
    # as torchvision's reference training script saves it: its arguments beside the weights
    wrapped = {"model": model.state_dict(), "epoch": 3, "args": argparse.Namespace(lr=0.02, epochs=26)}
    torch.save(wrapped if wrap else model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tv_cli")
    data = root / "data"
    write_dataset(data, num_images=2, seed=3, config=WorldConfig(image_size=96, max_object_size=64),
                  show_progress=False)
    classes = root / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    return data, _save(root / "model.pth", len(CLASSES) + 1), classes


def test_generate_labels_every_box_with_a_torchvision_detector(files, tmp_path):
    data, checkpoint, classes = files
    out = tmp_path / "out"
    args = ["generate", "--ann", str(data / "annotations.json"), "--img-dir", str(data / "images"), "--out", str(out),
            "--torchvision", BUILDER, "--checkpoint", str(checkpoint), "--classes", str(classes), "--steps", "2",
            "--no-crf", "--no-refine"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["boxes"] > 0 and summary["boxes_labelled"] == summary["boxes"]
    run = json.loads((out / "run.json").read_text())
    assert run["torchvision"] == BUILDER and run["class_names"] == list(CLASSES)
    # the identity Python gives the same detector: a Python run reuses these maps
    assert run["detector_digest"] == detector_digest(load_torchvision_detector(BUILDER, checkpoint, CLASSES))


def test_explain_draws_a_torchvision_detectors_box(files, tmp_path, capsys):
    data, checkpoint, classes = files
    out = tmp_path / "explain.png"
    image = sorted((data / "images").iterdir())[0]
    assert main(["explain", str(image), "--boxes", "10,10,60,70", "--steps", "2", "--out", str(out),
                 "--torchvision", BUILDER, "--checkpoint", str(checkpoint), "--classes", str(classes)]) == 0
    assert out.stat().st_size > 0 and "box 0" in capsys.readouterr().out


def test_coco_names_by_default_for_91_classes_and_a_wrapped_state_dict(tmp_path):
    model = load_torchvision_detector(BUILDER, _save(tmp_path / "coco.pth", 91, wrap=True))
    assert isinstance(model, detection.FasterRCNN) and not model.training  # a model, as load_detector gives
    adapter = BBAM(model).adapter  # the names travel with the model
    assert adapter.num_classes == 90 and adapter.class_names[0] == "person"
    three = load_torchvision_detector(BUILDER, _save(tmp_path / "three.pth", 4))
    assert three.dataset_meta["classes"] == ("0", "1", "2") and BBAM(three).adapter.class_names == ("0", "1", "2")


@pytest.mark.parametrize("case, message", [
    ("config too", "give one"),
    ("no checkpoint", "needs --checkpoint"),
    ("classes alone", "--classes goes with --torchvision"),
    ("other architecture", "does not fit torchvision's fasterrcnn_resnet50_fpn"),
    ("wrong class count", "class_names must name the model's"),
    ("not a checkpoint", "not a readable torch file"),
    ("classes not text", "not a readable UTF-8 text file"),
])
def test_unusable_torchvision_arguments_exit_2_with_a_message(files, tmp_path, capsys, case, message):
    data, checkpoint, classes = files
    image = str(sorted((data / "images").iterdir())[0])
    detector = {"config too": ["--torchvision", BUILDER, "--checkpoint", str(checkpoint), "--config", str(classes)],
                "no checkpoint": ["--torchvision", BUILDER],
                "classes alone": ["--classes", str(classes)],
                "other architecture": ["--torchvision", "fasterrcnn_resnet50_fpn", "--checkpoint", str(checkpoint)],
                "wrong class count": ["--torchvision", BUILDER, "--checkpoint", str(checkpoint), "--classes",
                                      str(tmp_path / "two.txt")],
                "not a checkpoint": ["--torchvision", BUILDER, "--checkpoint", str(classes)],
                "classes not text": ["--torchvision", BUILDER, "--checkpoint", str(checkpoint), "--classes",
                                     str(tmp_path / "binary.txt")]}[case]
    (tmp_path / "two.txt").write_text("a\nb\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81 not text")
    assert main(["explain", image, "--boxes", "10,10,60,70", "--steps", "1", "--out", str(tmp_path / "x.png"),
                 *detector]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
