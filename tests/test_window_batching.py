"""Windows of several sizes in one batched forward (padded as the detector pads a batch, grouped by a bound), and
the boxes of several images optimised together (BBAM.attribute_images)."""
from __future__ import annotations

import pytest
import torch

from bbam_captum import BBAM, BBAMSettings, load_detector
from bbam_captum.attr.bbam import group_windows
from bbam_captum.detectors import MMDetTwoStageAdapter
from bbam_captum.detectors.base import Crop, crop_windows
from bbam_captum.errors import SettingsError
from bbam_captum.synth import draw_image

FAST = dict(steps=3, num_proposals=32, max_positives=8)


def _crops(*sizes: tuple[int, int]) -> list[Crop]:
    return [Crop(0, 0, w, h) for w, h in sizes]


def test_without_padding_windows_of_one_size_share_a_forward_in_their_order():
    crops = _crops((64, 64), (96, 64), (64, 64), (96, 64), (32, 32))
    assert group_windows([0, 1, 2, 3, 4], crops) == [[0, 2], [1, 3], [4]]
    assert group_windows([3, 4, 1], crops) == [[3, 1], [4]]  # only the boxes asked for, in their order
    assert group_windows([0, 1], None) == [[0, 1]]  # no windows: the whole input, one forward


def test_padding_joins_windows_within_the_bound_for_every_member():
    crops = _crops((64, 64), (96, 64), (64, 96), (32, 32), (128, 128))
    # 96 x 64 and 64 x 96 padded to 96 x 96: 1.5 times their pixels; 64 x 64 padded so: 2.25 times
    assert group_windows(list(range(5)), crops, padding=1.0) == [[0], [1, 2], [3], [4]]
    assert group_windows(list(range(5)), crops, padding=1.25) == [[0, 1, 2], [3], [4]]
    for padding in (0.0, 0.5, 1.0, 3.0, 20.0):
        groups = group_windows(list(range(5)), crops, padding)
        assert sorted(k for g in groups for k in g) == list(range(5))
        for group in groups:
            width, height = max(crops[k].width for k in group), max(crops[k].height for k in group)
            assert all(width * height <= (1 + padding) * crops[k].width * crops[k].height for k in group)
    assert len(group_windows(list(range(5)), crops, padding=15.0)) == 1  # 128^2 / 32^2 = 16


def test_crop_windows_pads_bottom_right_with_the_value():
    inputs = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = crop_windows(inputs, [Crop(2, 1, 4, 3), Crop(0, 0, 2, 5)], pad_value=-1.0)
    assert out.shape == (2, 3, 5, 4)
    assert torch.equal(out[0, :, :3, :], inputs[0, :, 1:4, 2:6]) and (out[0, :, 3:, :] == -1).all()
    assert torch.equal(out[1, :, :, :2], inputs[1, :, :5, :2]) and (out[1, :, :, 2:] == -1).all()
    with pytest.raises(ValueError, match="one crop per input"):
        crop_windows(inputs, [Crop(0, 0, 2, 2)])


def test_window_padding_is_checked():
    with pytest.raises(SettingsError, match="window_padding must be"):
        BBAMSettings(window_padding=-0.5)
    with pytest.raises(SettingsError, match="window_padding must be"):
        BBAMSettings(window_padding=float("nan"))


@pytest.fixture(scope="module")
def adapter() -> MMDetTwoStageAdapter:
    return MMDetTwoStageAdapter(load_detector())


def test_a_padded_window_gives_the_head_outputs_of_its_own(adapter):
    """Every object's window in one padded batch: the RoI head says what it says on the window alone."""
    rgb, objects = draw_image(1, 3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    boxes = [torch.tensor(o.bbox_xyxy, dtype=torch.float32) for o in objects]
    crops = [adapter.crop(torch.cat([b[:2] - (b[2:] - b[:2]) / 4, b[2:] + (b[2:] - b[:2]) / 4]), 192, 192)
             for b in boxes]
    assert len({(c.width, c.height) for c in crops}) > 1  # windows of several sizes
    rois = torch.stack([torch.cat([torch.tensor([float(i)]), b]) for i, b in enumerate(boxes)])
    with torch.no_grad(), adapter.frozen():
        together = adapter.roi_outputs(adapter.features(image.expand(len(boxes), -1, -1, -1), crops), rois)
        for i, (obj, crop) in enumerate(zip(objects, crops)):
            alone = adapter.roi_outputs(adapter.features(image, [crop]), rois[i:i + 1] * torch.tensor([0, 1, 1, 1, 1]))
            assert abs(together.probs[i, obj.label] - alone.probs[0, obj.label]) < 0.02
            assert (together.deltas[i, obj.label] - alone.deltas[0, obj.label]).abs().max() < 0.1


class _CountingAdapter(MMDetTwoStageAdapter):
    """Counts the batched forwards."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.forwards = 0

    def features(self, images, crops=None):
        self.forwards += 1
        return super().features(images, crops)


def test_window_padding_runs_fewer_forwards_and_keeps_the_maps():
    torch.set_num_threads(1)
    rgb, objects = draw_image(1, 3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)
    boxes = torch.tensor([o.bbox_xyxy for o in objects], dtype=torch.float32)
    targets = [o.label for o in objects]
    maps, forwards = {}, {}
    for padding in (0.0, 3.0):
        adapter = _CountingAdapter(load_detector())
        maps[padding] = BBAM(adapter).attribute(image, boxes, target=targets, window_padding=padding,
                                                max_memory_mb=None, **FAST)
        forwards[padding] = adapter.forwards
    assert forwards[3.0] < forwards[0.0]
    close = [(torch.abs(a - b).mean() < 0.02) for a, b in zip(maps[0.0], maps[3.0])]
    assert all(close), [float(torch.abs(a - b).mean()) for a, b in zip(maps[0.0], maps[3.0])]


def _images(*indices: int) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    out = []
    for index in indices:
        rgb, objects = draw_image(1, index)
        out.append((torch.from_numpy(rgb).permute(2, 0, 1), torch.tensor([o.bbox_xyxy for o in objects],
                                                                          dtype=torch.float32),
                    [o.label for o in objects]))
    return out


def test_the_boxes_of_several_images_get_the_maps_of_one_image_at_a_time():
    torch.set_num_threads(1)
    scenes = _images(3, 5, 7)
    settings = BBAMSettings(max_memory_mb=None, **FAST)
    bbam = BBAM(load_detector())
    alone = [bbam.attribute(image, boxes, target=labels, settings=settings, return_records=True)
             for image, boxes, labels in scenes]
    together = bbam.attribute_images([s[0] for s in scenes], [s[1] for s in scenes], [s[2] for s in scenes],
                                     settings=settings, return_records=True)
    for (maps, records), (maps_alone, records_alone) in zip(together, alone):
        assert maps.shape == maps_alone.shape
        assert torch.allclose(maps, maps_alone, atol=1e-4)
        assert [(r.target, r.stride, r.num_positives, r.steps) for r in records] == \
            [(r.target, r.stride, r.num_positives, r.steps) for r in records_alone]


def test_windows_of_several_images_share_forwards():
    torch.set_num_threads(1)
    scenes = _images(3, 5, 7)
    settings = BBAMSettings(max_memory_mb=None, window_padding=3.0, **FAST)  # windows of other images join
    separate, joint = _CountingAdapter(load_detector()), _CountingAdapter(load_detector())
    alone = [BBAM(separate).attribute(image, boxes, target=labels, settings=settings)
             for image, boxes, labels in scenes]
    together = BBAM(joint).attribute_images([s[0] for s in scenes], [s[1] for s in scenes], [s[2] for s in scenes],
                                            settings=settings)
    assert joint.forwards < separate.forwards
    assert all(torch.abs(a - b).mean() < 0.02 for maps, maps_alone in zip(together, alone)
               for a, b in zip(maps, maps_alone))


def test_images_of_several_sizes_and_a_memory_budget():
    torch.set_num_threads(1)
    (image, boxes, labels), = _images(3)
    small = image[:, 32:160, 16:176]  # 128 x 160: another input size, its own forwards
    small_boxes = (boxes - torch.tensor([16.0, 32.0, 16.0, 32.0])).clamp(min=0)
    bbam = BBAM(load_detector())
    settings = BBAMSettings(**FAST)
    together = bbam.attribute_images([image, small], [boxes, small_boxes], [labels, labels], settings=settings)
    assert together[0].shape == (len(boxes), 1, 192, 192) and together[1].shape == (len(boxes), 1, 128, 160)
    for maps, (img, b) in zip(together, [(image, boxes), (small, small_boxes)]):
        assert torch.allclose(maps, bbam.attribute(img, b, target=labels, settings=settings), atol=1e-4)
    chunked = bbam.attribute_images([image, small], [boxes, small_boxes], [labels, labels],
                                    settings=BBAMSettings(max_memory_mb=1e-3, **FAST))  # every box a chunk
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(chunked, together))
    with pytest.raises(ValueError, match="one entry of boxes"):
        bbam.attribute_images([image, small], [boxes])


def test_another_optimiser_runs_image_by_image():
    from bbam_captum.attr import optimise_masks

    calls = []

    def counted(*args):
        calls.append(args[1].shape)
        return optimise_masks(*args)

    scenes = _images(3, 5)
    BBAM(load_detector(), optimise_masks=counted).attribute_images(
        [s[0] for s in scenes], [s[1] for s in scenes], settings=BBAMSettings(max_memory_mb=None, **FAST))
    assert len(calls) == 2  # one image each time, through the extension point's own signature


def test_generate_in_batches_of_images_writes_the_maps_of_one_at_a_time(small, tmp_path, capsys):
    import json

    import numpy as np

    from bbam_captum.cli.main import main

    data, ann = small
    ann_path = data / "ann.json"
    ann_path.write_text(json.dumps(ann))
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        assert main(["generate", "--ann", str(ann_path), "--img-dir", str(data / "images"), "--out", str(out),
                     "--steps", "2", "--no-crf", "--batch-images", str(n)]) == 0
        runs[n] = out
    files = sorted(p.name for p in (runs[1] / "maps").glob("*.npz"))
    assert len(files) == 2 and files == sorted(p.name for p in (runs[2] / "maps").glob("*.npz"))
    for name in files:
        one, two = np.load(runs[1] / "maps" / name), np.load(runs[2] / "maps" / name)
        assert str(one["key"]) == str(two["key"])
        records_one, records_two = json.loads(str(one["records"])), json.loads(str(two["records"]))
        assert [{**r, "final_loss": None} for r in records_one] == [{**r, "final_loss": None} for r in records_two]
        assert np.allclose([r["final_loss"] for r in records_one], [r["final_loss"] for r in records_two], rtol=1e-4)
        assert np.allclose(one["maps"].astype(np.float32), two["maps"].astype(np.float32), atol=2e-3)
    assert main(["generate", "--ann", str(ann_path), "--img-dir", str(data / "images"), "--out",
                 str(tmp_path / "out0"), "--batch-images", "0"]) == 2
    assert "--batch-images must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out0").exists()
