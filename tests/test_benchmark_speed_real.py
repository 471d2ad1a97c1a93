"""The real-scale speed harness, run small: the bundled detector on a small image."""
from __future__ import annotations

import json
from unittest import mock

import pytest
import torch

from benchmarks import speed_real
from bbam_captum import BBAM, load_detector


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_boxes_follow_cocos_sizes():
    boxes = speed_real.draw_boxes(400, 800, 1333, seed=0)
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= torch.tensor([1333, 800]))).all()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (800 / 480) ** 2  # back to COCO's pixels
    shares = [float(((areas >= lo) & (areas < hi)).float().mean()) for lo, hi, _ in speed_real.COCO_SIZES.values()]
    assert shares == pytest.approx([0.41, 0.34, 0.25], abs=0.07)
    large = speed_real.draw_boxes(5, 800, 1333, seed=1, size="large")
    assert (((large[:, 2] - large[:, 0]) * (large[:, 3] - large[:, 1])) >= (96 * 800 / 480) ** 2 * 0.999).all()


@pytest.mark.slow
def test_forced_positives_give_each_recipe_its_cap():
    model = load_detector()
    image = speed_real.smooth_image(96, 128, seed=0)
    boxes = torch.tensor([[10.0, 10.0, 60.0, 50.0], [50.0, 30.0, 120.0, 90.0]])
    forced = BBAM(model, select_positives=speed_real.forced_positives(12))
    _, few = forced.attribute(image, boxes, target=0, steps=1, max_positives=5, return_records=True)
    _, many = forced.attribute(image, boxes, target=0, steps=1, max_positives=100, return_records=True)
    assert [r.num_positives for r in few] == [5, 5] and [r.num_positives for r in many] == [12, 12]
    assert not any(r.fallback for r in few + many)
    _, own = BBAM(model).attribute(image, boxes, target=0, steps=1, return_records=True)  # the library, untouched
    assert any(r.num_positives != 20 for r in own)


@pytest.mark.slow
def test_harness_writes_rows_and_resumes(tmp_path, capsys):
    args = ["--detector", "bundled", "--image-size", "96x128", "--counts", "3", "--timed-steps", "1",
            "--complete", "small", "--out", str(tmp_path)]
    speed_real.main(args)
    rows = json.loads((tmp_path / "speed_real.json").read_text())
    assert [r["method"] for r in rows] == ["reference", "bbam", "gradcam"]
    by = {r["method"]: r for r in rows}
    assert by["reference"]["extrapolated"] and by["bbam"]["extrapolated"] and not by["gradcam"]["extrapolated"]
    assert by["bbam"]["objects"] == 3 and all(r["sec_per_object"] > 0 and r["peak_mem_mb"] >= 0 for r in rows)
    meta = json.loads((tmp_path / "speed_real_meta.json").read_text())
    cases = {(c["case"], c["method"]): c for c in meta["cases"]}
    assert len(cases) == 3 * 3 + 1 + 1
    assert not cases[("small_complete", "bbam")]["extrapolated"]
    assert cases[("small", "reference")]["mean_positives"] == 60 and cases[("small", "bbam")]["mean_positives"] == 20
    report = (tmp_path / "speed_real.md").read_text()
    assert "reference / ours" in report and "| mixed_3 | bbam | 3 |" in report
    capsys.readouterr()
    speed_real.main(args)  # every case cached: nothing runs again
    assert "s/object" not in capsys.readouterr().out.split("Speed at real scale")[0]
    assert json.loads((tmp_path / "speed_real_meta.json").read_text())["cases"] == meta["cases"]


def test_torchvision_entry_runs_every_method_on_a_small_input():
    """The detector the GPU run uses: torchvision's R50-FPN (shrunk transform, random weights)."""
    from torchvision.models import detection

    from benchmarks import speed_real

    build = detection.fasterrcnn_resnet50_fpn
    with mock.patch.object(detection, "fasterrcnn_resnet50_fpn",
                           lambda **kw: build(min_size=96, max_size=128, **kw)):
        detector = speed_real.DETECTORS["torchvision_r50_fpn"].build("cpu")
    image = speed_real.smooth_image(96, 128, 0)
    boxes = speed_real.draw_boxes(2, 96, 128, 1)
    maps = detector.gradcam(detector.adapter, image, boxes, torch.zeros(2, dtype=torch.long))
    assert maps.shape == (2, 1, 96, 128) and maps.min() >= 0
    for method in ("bbam", "reference"):
        row = speed_real.run_case(detector, method, image, boxes, 1, 4)
        assert row["seconds"] > row["seconds_measured"] > 0  # one step timed, the recipe's extrapolated


def test_padded_windows_run_beside_the_defaults_on_the_mixed_cases(tmp_path, capsys):
    args = ["--detector", "bundled", "--image-size", "96x128", "--counts", "3", "--timed-steps", "1",
            "--complete", "", "--window-padding", "1.5", "--out", str(tmp_path)]
    speed_real.main(args)
    meta = json.loads((tmp_path / "speed_real_meta.json").read_text())
    cases = {(c["case"], c["method"]): c for c in meta["cases"]}
    assert cases[("mixed_3", "bbam_padded")]["window_padding"] == 1.5
    assert cases[("mixed_3", "bbam")]["window_padding"] == 0.0
    assert not any(m == "bbam_padded" for name, m in cases if not name.startswith("mixed_"))
    assert meta["padded_over_unpadded"]["mixed_3"] > 0
    assert "bbam_padded" in [r["method"] for r in json.loads((tmp_path / "speed_real.json").read_text())]
    assert "windows padded to share forwards" in (tmp_path / "speed_real.md").read_text()
    with pytest.raises(SystemExit):
        speed_real.main(["--window-padding", "-1", "--out", str(tmp_path)])
