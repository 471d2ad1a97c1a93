"""The dense CRF on images over its pixel budget: a downscaled grid, posteriors upsampled back."""
from dataclasses import replace

import numpy as np
import pytest

from bbam_captum.labels.crf import DenseCRFSettings, crf_grid, crf_masks


def _scene(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A grey image with a red square a quarter of its side, a wide blob over it and a box around it."""
    image = np.full((size, size, 3), 120, np.uint8)
    lo, hi = 5 * size // 16, 9 * size // 16
    image[lo:hi, lo:hi] = (220, 30, 30)
    truth = np.zeros((size, size), bool)
    truth[lo:hi, lo:hi] = True
    yy, xx = np.mgrid[:size, :size]
    centre, width = (lo + hi) / 2, (hi - lo) / 2
    blob = np.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * width ** 2))[None]
    box = np.array([[lo - width / 2, lo - width / 2, hi + width / 2, hi + width / 2]])
    return image, truth, blob, box


@pytest.mark.parametrize("height, width", [(800, 800), (600, 1000), (4000, 30)])
def test_grid_keeps_the_aspect_within_the_budget(height, width):
    budget = 256 * 256
    h, w = crf_grid(height, width, budget)
    assert h * w <= budget < height * width
    assert abs(h / w - height / width) < 0.05 * height / width + 1 / min(h, w)


def test_grid_is_the_image_within_the_budget_or_without_one():
    assert crf_grid(192, 192, 256 * 256) == (192, 192)
    assert crf_grid(800, 800, 0) == (800, 800)
    default = DenseCRFSettings().max_pixels
    assert crf_grid(500, 500, default) == (500, 500)  # PASCAL VOC sizes: the original's full resolution
    assert max(crf_grid(800, 1333, default)) < 800  # the stock test scale: a grid


def test_images_within_the_budget_take_the_full_resolution_path():
    image, _, blob, box = _scene(64)
    full = crf_masks(blob, box, image, 0.15, replace(DenseCRFSettings(), max_pixels=0))
    assert np.array_equal(full, crf_masks(blob, box, image, 0.15))  # the default budget
    assert np.array_equal(full, crf_masks(blob, box, image, 0.15, replace(DenseCRFSettings(), max_pixels=64 * 64)))
    assert crf_grid(64, 65, 64 * 64) != (64, 65)  # one pixel over: the grid


def test_boxes_partly_or_wholly_outside_the_image_stay_inside_it():
    image, _, blob, _ = _scene(64)
    boxes = np.array([[-20, -20, 30, 30], [-30, -30, -5, -5], [50, 50, 90, 90]], dtype=float)
    for budget in (0, 40 * 40):
        masks = crf_masks(np.repeat(blob, 3, 0), boxes, image, 0.15, replace(DenseCRFSettings(), max_pixels=budget))
        assert not masks[0][30:].any() and not masks[0][:, 30:].any()
        assert not masks[1].any()  # a box left of and above the image has no pixel
        assert not masks[2][:50].any() and not masks[2][:, :50].any()


def test_grid_masks_agree_with_the_full_resolution_crf():
    image, truth, blob, box = _scene(320)
    settings = replace(DenseCRFSettings(), max_pixels=80 * 80)  # a 4x coarser grid
    coarse = crf_masks(blob, box, image, 0.15, settings)[0]
    full = crf_masks(blob, box, image, 0.15, replace(settings, max_pixels=0))[0]
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert coarse.shape == (320, 320)
    assert iou(full, truth) > 0.9
    assert iou(coarse, full) > 0.9 and iou(coarse, truth) > 0.9
    x1, y1, x2, y2 = np.floor(box[0]).astype(int)
    outside = np.ones_like(coarse)
    outside[y1:y2 + 1, x1:x2 + 1] = False
    assert not (coarse & outside).any()  # inside the box
