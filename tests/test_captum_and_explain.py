"""BBAM with Captum's visualisation and metrics, and the ``explain`` command's figure."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bbam_captum import BBAM
from bbam_captum.cli.main import main
from conftest import DETECTOR_CONFIG

FAST = dict(steps=3, num_proposals=8, max_positives=4)


def _image() -> torch.Tensor:
    return torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_visualize_image_attr_draws_a_bbam_map(random_detector):
    from captum.attr import visualization as viz

    image = _image()
    maps = BBAM(random_detector).attribute(image, torch.tensor([10.0, 10.0, 50.0, 40.0]), target=0, **FAST)
    fig, ax = viz.visualize_image_attr(maps[0].permute(1, 2, 0).numpy(), image.permute(1, 2, 0).numpy() / 255.0,
                                       method="blended_heat_map", sign="positive", use_pyplot=False)
    assert len(ax.images) == 2  # the image and the heat map over it
    assert ax.images[1].get_array().shape == (64, 64)


def test_sensitivity_max_runs_with_bbam(random_detector):
    from captum.metrics import sensitivity_max

    bbam = BBAM(random_detector)
    image = _image().float().unsqueeze(0)
    sens = sensitivity_max(bbam.attribute, image, n_perturb_samples=2, max_examples_per_batch=1,
                           perturb_radius=2.0, boxes=torch.tensor([10.0, 10.0, 50.0, 40.0]), target=0, **FAST)
    assert sens.shape == (1,) and torch.isfinite(sens).all() and sens.item() >= 0


def test_explain_writes_one_panel_per_box(tmp_path):
    image_path = tmp_path / "image.png"
    Image.fromarray(_image().permute(1, 2, 0).numpy()).save(image_path)
    out = tmp_path / "fig.png"
    code = main(["explain", str(image_path), "--boxes", "4,4,30,30", "10,20,60,60", "--out", str(out),
                 "--config", str(DETECTOR_CONFIG), "--steps", "3"])
    assert code == 0
    fig = np.array(Image.open(out).convert("RGB"))
    panels = 3  # the image with boxes, then one panel per box
    assert fig.shape[1] == round(2.2 * panels * 120) and fig.shape[0] == round(2.5 * 120)
    width = fig.shape[1] // panels
    for p in range(panels):
        panel = fig[:, p * width:(p + 1) * width]
        assert (panel.std(axis=2) > 10).mean() > 0.05, f"panel {p} looks empty"


def test_explain_reports_missing_image(tmp_path, capsys):
    assert main(["explain", str(tmp_path / "nope.png"), "--out", str(tmp_path / "f.png")]) == 2
    assert "image not found" in capsys.readouterr().err
