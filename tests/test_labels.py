"""Pseudo-label rules on hand-made maps: thresholds, overlaps, refinement, scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from bbam_captum.labels import IGNORE, instance_masks, refine_mask, refine_masks, semantic_label, smooth_maps
from bbam_captum.labels.crf import _ImageCRF, box_extent, box_posterior, crf_foreground, crf_masks
from bbam_captum.labels.settings import DenseCRFSettings
from bbam_captum.metrics import box_masks, mask_iou


def test_instance_masks_stay_inside_their_box():
    maps = torch.ones(1, 1, 10, 10)
    masks = instance_masks(maps, torch.tensor([[2.0, 3.0, 6.0, 8.0]]), 0.5)
    assert masks.sum() == 4 * 5 and masks[0, 3:8, 2:6].all()


def test_semantic_label_thresholds_and_overlaps():
    fg = np.zeros((3, 12, 12), bool)
    un = np.zeros((3, 12, 12), bool)
    boxes = np.array([[0, 0, 8, 8], [4, 4, 12, 12], [1, 1, 4, 4]], np.float32)
    classes = np.array([0, 1, 2])
    fg[0, 0:8, 0:8] = True   # class 0 over a large box
    fg[1, 4:12, 4:12] = True  # class 1 overlapping it, neither inside the other
    fg[2, 1:4, 1:4] = True   # class 2 wholly inside box 0: it wins there
    un[1, 10:12, 0:4] = True  # uncertain, claimed by nobody
    label = semantic_label(fg, un, boxes, classes)
    assert (label[4:8, 4:8] == IGNORE).all()        # two classes, no containment: ignored
    assert (label[1:4, 1:4] == 3).all()             # inner box wins
    assert label[0, 6] == 1 and label[10, 10] == 2  # each class where it alone claims
    assert (label[10:12, 0:4] == IGNORE).all()      # uncertain band ignored
    assert label[9, 0] == 0                         # background elsewhere


def test_same_class_overlap_is_kept():
    fg = np.zeros((2, 6, 6), bool)
    fg[0, :, :4] = fg[1, :, 2:] = True
    label = semantic_label(fg, np.zeros_like(fg), np.array([[0, 0, 4, 6], [2, 0, 6, 6]], np.float32), np.array([1, 1]))
    assert (label == 2).all()


def test_refine_takes_contained_proposals_and_the_best_one():
    pools = [np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])]
    t = np.zeros((4, 4), bool)
    t[0:2, 0:2] = True      # segment 0 exactly: contained
    t[2, 2] = True          # a quarter of segment 3: neither contained nor best
    refined = refine_mask(t, (0, 0, 4, 4), pools)
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:2] = True
    assert np.array_equal(refined, expected)
    # no proposal lies inside a one-pixel box: T is kept as it is
    assert np.array_equal(refine_mask(t, (0, 0, 1, 1), pools), t)


def test_refine_judges_a_proposal_on_its_whole_extent():
    # segment 0 spans the top rows, half of it outside the box (columns 0-1)
    pools = [np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2]])]
    t = np.zeros((4, 4), bool)
    t[0:2, 0:2] = True      # all of segment 0 that lies in the box
    t[2, 0] = True          # a quarter of segment 1
    refined = refine_mask(t, (0, 0, 2, 4), pools)
    # segment 0 is no candidate (cut to the box it would be contained); segment 1 is the best
    expected = np.zeros((4, 4), bool)
    expected[2:, 0:2] = True
    assert np.array_equal(refined, expected)
    # a looser overlap admits segment 0, half inside the box, and keeps only its part in the box
    assert refine_mask(t, (0, 0, 2, 4), pools, overlap=0.5)[0:2, 0:2].all()
    assert not refine_mask(t, (0, 0, 2, 4), pools, overlap=0.5)[:, 2:].any()
    with pytest.raises(ValueError, match="overlap"):
        refine_mask(t, (0, 0, 2, 4), pools, overlap=0.0)


def test_refine_masks_refines_each_box_and_accepts_none():
    pools = [np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])]
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = True  # one pixel of segment 0: refined to the whole segment
    masks[1, 2:, 2:] = True
    boxes = [(0, 0, 4, 4), (2, 2, 4, 4)]
    out = refine_masks(masks, boxes, pools)
    assert all(np.array_equal(o, refine_mask(m, b, pools)) for o, m, b in zip(out, masks, boxes))
    assert out[0, :2, :2].all() and not out[0, 2:].any()
    assert refine_masks(np.zeros((0, 4, 4), bool), [], pools).shape == (0, 4, 4)
    with pytest.raises(ValueError, match="overlap"):
        refine_masks(masks, boxes, pools, overlap=1.5)
    # any labels will do: with gaps and negative ones, the same segments give the same masks
    assert np.array_equal(refine_masks(masks, boxes, [p * 10 - 5 for p in pools]), out)


def test_mask_iou_and_box_baseline():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    assert torch.allclose(mask_iou(a, a), torch.ones(2))
    assert mask_iou(a[:1], ~a[:1]).item() == 0.0
    boxes = box_masks(torch.tensor([[0.0, 0.0, 2.0, 4.0]]), 4, 4)
    assert boxes.sum() == 8


def _square_scene() -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a red 16 x 16 square, and a box around it with some background."""
    image = np.full((64, 64, 3), 120, np.uint8)
    image[20:36, 24:40] = (220, 30, 30)
    truth = np.zeros((64, 64), bool)
    truth[20:36, 24:40] = True
    return image, truth


@pytest.mark.parametrize("shape, sigma", [((2, 1, 40, 56), 2.5), ((1, 1, 90, 70), 14.0)])
def test_blur_in_two_passes_is_the_square_kernel_blur(shape, sigma):
    maps = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    square = gaussian_blur(maps, kernel_size=2 * int(3 * sigma) + 1, sigma=sigma)
    assert torch.allclose(smooth_maps(maps, sigma), square, atol=1e-5)
    assert smooth_maps(maps, 0) is maps


def test_crf_snaps_a_coarse_map_to_the_object():
    image, truth = _square_scene()
    box = np.array([[16.0, 12.0, 48.0, 44.0]])
    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((yy - 28) ** 2 + (xx - 32) ** 2) / (2 * 9.0 ** 2))[None]  # a wide blob, not the square
    mask = crf_masks(blob, box, image, top_share=0.15)[0]
    coarse = instance_masks(torch.from_numpy(blob[:, None]).float(), torch.from_numpy(box).float(), 0.5)[0].numpy()
    iou = lambda a: (a & truth).sum() / (a | truth).sum()  # noqa: E731
    assert iou(mask) > 0.9 > iou(coarse) + 0.1
    assert not mask[:12].any() and not mask[:, :16].any()  # inside the box


def test_crf_retries_a_small_box_with_an_empty_map():
    image, truth = _square_scene()
    box = np.array([[22.0, 18.0, 42.0, 38.0]])  # 10 % of the image
    mask = crf_masks(np.zeros((1, 64, 64)), box, image, top_share=0.15)[0]
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8


def test_crf_checks_its_inputs():
    image, _ = _square_scene()
    with pytest.raises(ValueError, match="top_share"):
        crf_masks(np.zeros((1, 64, 64)), [[0, 0, 8, 8]], image, top_share=0.0)
    with pytest.raises(ValueError, match="maps must be"):
        crf_masks(np.zeros((2, 64, 64)), [[0, 0, 8, 8]], image, top_share=0.15)
    with pytest.raises(ValueError, match="uint8"):
        crf_foreground(image.astype(np.float32), np.zeros((64, 64)))
    assert crf_masks(np.zeros((0, 64, 64)), np.zeros((0, 4)), image, 0.15).shape == (0, 64, 64)


def test_label_chain_calls_the_crf_it_is_given():
    """``pseudo_masks(crf=...)``: the chain's CRF is an extension point, called for the instance
    and the wider masks with the chain's CRF settings and blur widths."""
    from bbam_captum.labels import LabelSettings, pseudo_masks

    calls = []

    def fake_crf(maps, boxes, image, top_share, settings, blur_sigmas):
        calls.append((top_share, settings.max_pixels, list(blur_sigmas)))
        masks = np.zeros(maps.shape, bool)
        masks[:, 2:5, 2:5] = top_share > 0.5  # the wider masks (the larger share) claim a square
        return masks

    settings = LabelSettings(refine=False)
    maps = np.ones((1, 8, 8), np.float32)
    image = np.zeros((8, 8, 3), np.uint8)
    instance, foreground, uncertain = pseudo_masks(maps, np.array([[0.0, 0.0, 8.0, 8.0]]), settings, image,
                                                   cells=[4.0], crf=fake_crf)
    assert [c[0] for c in calls] == [settings.crf_fg_share, settings.crf_bg_share]
    assert all(c[1] == settings.crf_max_pixels and c[2] == [settings.crf_blur * 4.0] for c in calls)
    assert not instance.any() and not foreground.any() and uncertain.sum() == 9


class _CountingCRF:
    """A ForegroundCRF of the test's own: the library's image CRF, counting its inferences."""

    def __init__(self, image: np.ndarray, settings: DenseCRFSettings) -> None:
        self.calls, self.crf = 0, _ImageCRF(image, settings)

    def foreground(self, prob: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.crf.foreground(prob)


def test_box_posterior_takes_any_foreground_crf():
    # the per-box step is public so that other pairwise terms (benchmarks/feat_crf.py) reuse it:
    # with the library's own kernels it must give crf_masks' mask, and a box with no pixel no inference
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
    image[10:30, 20:40] = 200
    maps = np.zeros((1, 48, 64), np.float32)
    maps[0, 12:28, 22:38] = 1
    box, settings = np.array([18.0, 8.0, 42.0, 32.0]), DenseCRFSettings()
    crf = _CountingCRF(image, settings)
    extent = box_extent(box, 48, 64)
    mask = np.zeros((48, 64), bool)
    mask[extent] = box_posterior(maps[0], box, crf, 0.15, settings, 2.0, 48 * 64)[extent] > settings.keep
    expected = crf_masks(maps, box[None], image, 0.15, settings, [2.0])[0]
    assert crf.calls == 1 and expected.sum() > 200
    assert np.array_equal(mask, expected)
    empty = box_posterior(maps[0], np.array([5.0, 5.0, 5.0, 5.0]), crf, 0.15, settings, 2.0, 48 * 64)
    assert crf.calls == 1 and not empty.any()
