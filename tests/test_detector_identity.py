"""One identity per detector: the command line and Python name the bundled detector alike, so each
reuses the maps the other made; other weights are another detector."""
from __future__ import annotations

import pytest
import torch

from bbam_captum import BBAM, load_detector
from bbam_captum.cli._common import load_cli_detector
from bbam_captum.cli.main import build_parser
from bbam_captum.detectors import bundled_detector_files, detector_digest


@pytest.fixture(scope="module")
def bundled():
    """The bundled detector as ``bbam-captum generate --config CFG --checkpoint CKPT`` loads it."""
    config, checkpoint = bundled_detector_files()
    args = build_parser().parse_args(["generate", "--ann", "a.json", "--img-dir", ".", "--out", "out",
                                      "--config", str(config), "--checkpoint", str(checkpoint)])
    return load_cli_detector(args)


def test_the_command_line_and_python_give_one_identity(bundled):
    config, checkpoint = bundled_detector_files()
    digest = detector_digest(bundled)
    assert digest.startswith("model:")
    python = load_detector(config, checkpoint)  # a separate load of the same files
    assert python is not bundled and detector_digest(python) == digest
    assert detector_digest(load_detector()) == digest  # the defaults name the same files
    model = BBAM(python)
    assert detector_digest(model) == detector_digest(model.adapter) == digest  # however it is wrapped


def test_other_weights_are_another_detector(bundled):
    digest = detector_digest(bundled)
    bias = bundled.roi_head.bbox_head.fc_cls.bias
    with torch.no_grad():
        bias[0] += 1.0
    try:
        assert detector_digest(bundled) != digest
    finally:
        with torch.no_grad():
            bias[0] -= 1.0
    assert detector_digest(bundled) == digest


def test_another_test_pipeline_is_another_detector():
    """The test pipeline's Resize shapes the maps, though no weight changes: the config counts."""
    config, checkpoint = bundled_detector_files()
    model = load_detector(config, checkpoint)
    digest = detector_digest(model)
    model.cfg.test_dataloader.dataset.pipeline[1]["scale"] = (321, 123)
    assert detector_digest(model) != digest
