"""BBAM's mechanics on a randomly initialised detector and on a controlled toy detector."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from bbam_captum import BBAM
from bbam_captum.detectors import MMDetTwoStageAdapter
from bbam_captum.detectors.base import Crop, RoIOutputs

FAST = dict(steps=4, num_proposals=16, max_positives=8)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 64, 80), generator=g, dtype=torch.uint8)


BOXES = torch.tensor([[8.0, 6.0, 40.0, 44.0], [30.0, 20.0, 76.0, 60.0], [2.0, 2.0, 20.0, 18.0]])


def test_shape_range_and_no_weight_grads(random_detector, image):
    bbam = BBAM(random_detector)
    maps, records = bbam.attribute(image, BOXES, target=[0, 1, 2], return_records=True, **FAST)
    assert maps.shape == (3, 1, 64, 80)
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(p.grad is None for p in random_detector.parameters())
    assert all(p.requires_grad for p in random_detector.parameters())  # restored afterwards
    assert [r.target for r in records] == [0, 1, 2] and all(r.steps == 4 for r in records)
    # a random detector finds no positive: each box falls back to itself alone, and says so
    assert all(r.fallback and r.iou_threshold is None and r.num_positives == 1 for r in records)


def test_batched_equals_single(random_detector, image):
    bbam = BBAM(random_detector)
    batched = bbam.attribute(image, BOXES, target=[0, 1, 2], **FAST)
    singles = torch.cat([bbam.attribute(image, BOXES[i], target=[0, 1, 2][i], **FAST) for i in range(3)])
    assert torch.allclose(batched, singles, atol=1e-4)


def test_same_seed_same_maps_another_seed_other_maps():
    """On the bundled detector and its objects, so that boxes have positive proposals: the seed draws
    the jittered proposals, which a box that falls back to itself (as on a random detector) never uses."""
    from bbam_captum import load_detector
    from bbam_captum.synth import draw_image

    rgb, objects = draw_image(1, 3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)
    boxes = torch.tensor([o.bbox_xyxy for o in objects], dtype=torch.float32)
    labels = [o.label for o in objects]
    bbam = BBAM(load_detector())
    a, records = bbam.attribute(image, boxes, target=labels, seed=3, return_records=True, **FAST)
    assert [r.fallback for r in records].count(False) >= 1, f"every box fell back: {records}"
    assert torch.equal(a, bbam.attribute(image, boxes, target=labels, seed=3, **FAST))
    assert not torch.equal(a, bbam.attribute(image, boxes, target=labels, seed=4, **FAST))


@pytest.mark.parametrize("inputs, boxes, target, error, match", [
    (torch.zeros(64, 80), BOXES, 0, ValueError, "shape"),
    (torch.zeros(1, 4, 64, 80), BOXES, 0, ValueError, "shape"),
    (torch.zeros(2, 3, 64, 80), BOXES, 0, ValueError, "one RGB image"),
    ([[0.0]], BOXES, 0, TypeError, "torch.Tensor"),
    (torch.zeros(3, 64, 80), torch.tensor([[10.0, 10.0, 5.0, 20.0]]), 0, ValueError, "degenerate"),
    (torch.zeros(3, 64, 80), torch.tensor([[float("nan"), 1.0, 5.0, 20.0]]), 0, ValueError, "finite"),
    (torch.zeros(3, 64, 80), torch.tensor([[100.0, 10.0, 120.0, 20.0]]), 0, ValueError, "outside"),
    (torch.zeros(3, 64, 80), torch.zeros(2, 3), 0, ValueError, r"\(K, 4\)"),
    (torch.zeros(3, 64, 80), BOXES, 7, ValueError, "0..6"),
    (torch.zeros(3, 64, 80), BOXES, [0, 1], ValueError, "one per box"),
    (torch.zeros(3, 64, 80), BOXES, 0.5, TypeError, "integer"),
])
def test_bad_input(random_detector, inputs, boxes, target, error, match):
    with pytest.raises(error, match=match):
        BBAM(random_detector).attribute(inputs, boxes, target=target, **FAST)


def test_unsupported_model():
    with pytest.raises(TypeError, match="two-stage"):
        BBAM(torch.nn.Conv2d(3, 3, 1))


def test_crop_lies_on_the_feature_grid_and_covers_the_window(random_detector):
    adapter = MMDetTwoStageAdapter(random_detector)  # coarsest RoI level: stride 32; test Resize to 192
    crop = adapter.crop(torch.tensor([33.5, 10.0, 70.0, 41.0]), 192, 192)
    assert crop == Crop(left=32, top=0, width=64, height=64)
    assert adapter.crop(torch.tensor([-50.0, -50.0, 500.0, 500.0]), 192, 192) == Crop(0, 0, 192, 192)
    assert adapter.crop(torch.tensor([150.0, 170.0, 151.0, 171.0]), 192, 192) == Crop(128, 160, 32, 32)
    # a 96 px image is resized to 192 px first: crops are in the detector's input pixels
    assert adapter.crop(torch.tensor([10.0, 40.0, 20.0, 50.0]), 96, 96) == Crop(0, 64, 64, 64)


def test_cropped_forward_matches_the_full_image_outside_masked_out():
    """A window's features are the full image's, shifted: for each object's box, the RoI
    head says the same on the crop (RoIs still in image pixels) as on the full image
    painted with mu outside the window; only padding at the window's border differs."""
    from bbam_captum import load_detector
    from bbam_captum.synth import draw_image

    adapter = MMDetTwoStageAdapter(load_detector())
    cropped_somewhere = False
    for index in (3, 5):
        rgb, objects = draw_image(1, index)
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        for obj in objects:
            box = torch.tensor(obj.bbox_xyxy, dtype=torch.float32)
            side = box[2:] - box[:2]
            crop = adapter.crop(torch.cat([box[:2] - side / 2, box[2:] + side / 2]), 192, 192)
            cropped_somewhere |= crop.width * crop.height < 192 * 192
            window = (..., slice(crop.top, crop.top + crop.height), slice(crop.left, crop.left + crop.width))
            painted = adapter.pixel_mean().expand_as(image).clone()
            painted[window] = image[window]
            rois = torch.cat([box.new_zeros(1), box])[None]
            with torch.no_grad(), adapter.frozen():
                full = adapter.roi_outputs(adapter.features(painted), rois)
                cropped = adapter.roi_outputs(adapter.features(image, [crop]), rois)
            assert abs(full.probs[0, obj.label] - cropped.probs[0, obj.label]) < 0.02
            assert (full.deltas[0, obj.label] - cropped.deltas[0, obj.label]).abs().max() < 0.1
    assert cropped_somewhere


def test_partly_outside_box_is_clipped(random_detector, image):
    maps = BBAM(random_detector).attribute(image, torch.tensor([-10.0, -5.0, 30.0, 200.0]), target=0, **FAST)
    assert maps.shape == (1, 1, 64, 80)


class RegionDetector:
    """A toy two-stage detector whose outputs depend only on the pixels of ``region``.

    The class score rises with the mean brightness of the region, and the regression
    deltas are functions of the region's per-channel means, whatever the proposal.
    """

    num_classes = 2
    class_names = ("a", "b")
    device = torch.device("cpu")

    def __init__(self, region: tuple[int, int, int, int]):
        self.region = region

    def pixel_mean(self):
        return torch.zeros(3, 1, 1)

    def crop(self, window, height, width):  # cannot crop: the whole input
        return Crop(0, 0, width, height)

    def features(self, images, crops=None):
        x1, y1, x2, y2 = self.region
        return images[:, :, y1:y2, x1:x2].mean(dim=(2, 3)) / 255.0  # [N, 3]

    def roi_outputs(self, features, rois):
        stats = features[rois[:, 0].long()]  # [R, 3]
        logits = torch.stack([4 * stats.mean(1), torch.zeros_like(stats[:, 0]), -2 + 0 * stats[:, 0]], 1)
        deltas = 5 * torch.cat([stats, stats.mean(1, keepdim=True)], 1)[:, None, :].expand(-1, 2, 4)
        return RoIOutputs(probs=torch.softmax(logits, 1), deltas=deltas)

    def decode(self, proposals, deltas, height, width):
        return proposals.clone()

    def detect(self, image, score_thr):
        raise NotImplementedError

    @contextmanager
    def frozen(self):
        yield


def test_map_marks_the_region_the_detector_reads():
    region = (40, 16, 64, 40)
    image = torch.full((3, 64, 96), 200.0)
    maps = BBAM(RegionDetector(region)).attribute(image, torch.tensor([8.0, 8.0, 88.0, 56.0]), target=0,
                                                  stride=4, steps=150, l1_coef=0.02)
    x1, y1, x2, y2 = region
    inside = maps[0, 0, y1 + 4:y2 - 4, x1 + 4:x2 - 4].mean()
    outside = maps[0, 0].clone()
    outside[y1 - 4:y2 + 4, x1 - 4:x2 + 4] = float("nan")
    assert inside > 0.7
    assert outside.nanmean() < 0.2


@pytest.mark.parametrize("context", [0.25, 1e308])
def test_context_window_is_cut_to_the_image(context):
    from bbam_captum.attr.bbam import context_window
    from bbam_captum.attr.proposals import PositiveProposals

    box = torch.tensor([20.0, 30.0, 40.0, 50.0])
    positives = PositiveProposals(rois=torch.tensor([[18.0, 28.0, 42.0, 52.0]]), regressed=box[None].clone(),
                                  target=0, probs=torch.tensor([0.9]), deltas=torch.zeros(1, 4), iou_threshold=0.5,
                                  fallback=False)
    window = context_window(positives, box, context, height=96, width=64)
    assert torch.isfinite(window).all()
    if context > 1:  # a huge context is the whole image, not an infinite window
        assert window.tolist() == [0.0, 0.0, 64.0, 96.0]
    else:  # the proposals' union grown by a quarter of the box's side
        assert window.tolist() == [13.0, 23.0, 47.0, 57.0]
