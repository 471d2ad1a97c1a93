"""The label step's shared work: one CRF set-up for both masks, Eq. 4's segments around the boxes of a large image."""
from dataclasses import replace

import numpy as np
import pytest

from bbam_captum.labels import LabelSettings, pseudo_masks
from bbam_captum.labels.crf import DenseCRFSettings, crf_mask_sets, crf_masks
from bbam_captum.labels.refine import _index, box_segment_pools, refine_masks, segment_pools


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey 64 x 64 image with a red and a blue square, a blob map over each and a box around each."""
    image = np.full((64, 64, 3), 120, np.uint8)
    image[10:22, 8:22] = (220, 30, 30)
    image[36:52, 34:54] = (30, 40, 210)
    yy, xx = np.mgrid[:64, :64]
    maps = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s ** 2)) for cy, cx, s in
                     ((16, 15, 6.0), (44, 44, 8.0))]).astype(np.float32)
    boxes = np.array([[5.0, 7.0, 25.0, 25.0], [30.0, 32.0, 58.0, 56.0]])
    return image, maps, boxes


@pytest.mark.parametrize("max_pixels", [0, 32 * 32])  # full resolution, and a grid with guided upsampling
def test_shared_crf_set_up_gives_the_masks_of_separate_calls(max_pixels):
    image, maps, boxes = _scene()
    settings = replace(DenseCRFSettings(), max_pixels=max_pixels)
    shares = (0.15, 0.8)
    sets = crf_mask_sets(maps, boxes, image, shares, settings, [3.0, 4.0])
    assert sets.shape == (2, *maps.shape)
    for share, masks in zip(shares, sets):
        assert np.array_equal(masks, crf_masks(maps, boxes, image, share, settings, [3.0, 4.0]))


def test_default_chain_gives_the_masks_of_two_crf_calls_and_whole_image_segments():
    """Within the segments' pixel budget (the 192 px worlds) the default chain is the chain as it was:
    the CRF called once per share, Eq. 4 on the whole image's segments."""
    image, maps, boxes = _scene()
    settings, cells = LabelSettings(), [4.0, 4.0]
    shared = pseudo_masks(maps, boxes, settings, image, cells)
    separate = pseudo_masks(maps, boxes, settings, image, cells, crf=crf_masks)
    assert all(np.array_equal(a, b) for a, b in zip(shared, separate))
    whole = [_index(labels) for labels in segment_pools(image)]
    for a, b in zip(box_segment_pools(image, boxes), whole):
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.sizes, b.sizes)


def test_crop_segments_refine_as_the_whole_image_where_segments_stay_inside_the_crops():
    image, _, boxes = _scene()
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 11:20, 9:20] = True  # most of the red square
    masks[1, 38:50, 36:50] = True  # most of the blue one
    whole = refine_masks(masks, boxes, segment_pools(image))
    crops = box_segment_pools(image, boxes, max_pixels=1)  # every image over the budget: crops
    assert np.array_equal(refine_masks(masks, boxes, crops), whole)
    assert not np.array_equal(whole, masks)  # the segments took part


def test_a_segment_crossing_the_crop_border_is_never_a_candidate():
    """A stripe 96 % inside the box is a candidate on the whole image; cut by the crop (margin 0:
    the box itself) where the image goes on, it may run on anywhere, so it is not."""
    image = np.full((64, 64, 3), 120, np.uint8)
    image[20:28, 10:58] = (220, 30, 30)  # 2 of its 48 columns outside the box
    box = np.array([[8.0, 8.0, 56.0, 56.0]])
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 20:28, 10:40] = True  # part of the stripe
    whole = refine_masks(mask, box, segment_pools(image))
    assert whole[0, 22:26, 12:56].all()  # the stripe (its inner rows: a segment), cut to the box, is the best
    crops = box_segment_pools(image, box, max_pixels=1, margin=0.0)
    assert all(np.isinf(pool.sizes[pool.labels[24, 30]]) for pool in crops)
    assert np.array_equal(refine_masks(mask, box, crops), mask)  # no candidate: the mask as it was


def _corner_scene(size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey image with a red square near its top-left corner, a blob map over it and a box around it."""
    image = np.full((size, size, 3), 120, np.uint8)
    image[20:40, 20:40] = (220, 30, 30)
    yy, xx = np.mgrid[:size, :size]
    maps = np.exp(-((yy - 30) ** 2 + (xx - 30) ** 2) / (2 * 6.0 ** 2)).astype(np.float32)[None]
    return image, maps, np.array([[15.0, 15.0, 45.0, 45.0]])


def test_a_window_over_the_whole_image_gives_the_whole_image_crf():
    image, maps, boxes = _scene()  # 64 px: 3 kernel widths (240 px) past any box cover it
    whole = crf_mask_sets(maps, boxes, image, (0.15, 0.8), DenseCRFSettings(window=0.0), [3.0, 4.0])
    assert np.array_equal(crf_mask_sets(maps, boxes, image, (0.15, 0.8), DenseCRFSettings(), [3.0, 4.0]), whole)


def test_pixels_past_a_box_window_do_not_reach_its_masks():
    image, maps, boxes = _corner_scene()
    changed = image.copy()
    changed[120:, 120:] = (220, 30, 30)  # far away, the square's colour: background pulling on the square
    narrow = DenseCRFSettings(window=0.25)  # 20 px past the box: rows and columns 0-65
    masks = crf_masks(maps, boxes, image, 0.15, narrow, [3.0])
    assert masks[0, 22:38, 22:38].all()
    assert np.array_equal(crf_masks(maps, boxes, changed, 0.15, narrow, [3.0]), masks)
    whole = DenseCRFSettings(window=0.0)  # the whole image's CRF: the far pixels take part
    assert crf_masks(maps, boxes, changed, 0.15, whole, [3.0]).sum() < crf_masks(maps, boxes, image, 0.15, whole,
                                                                                  [3.0]).sum()


def test_a_small_box_is_told_by_the_image_not_by_its_window():
    """A box under ``small_box`` of the image whose map gives no mask is retried from flat
    probabilities; its window is far smaller than the image and must not make it a large box."""
    image, _, boxes = _corner_scene()
    empty = np.zeros((1, 200, 200), np.float32)  # no attribution: the map's prior gives no mask
    settings = DenseCRFSettings(window=0.1)  # a 66 px window: the box is over 10 % of it, under 10 % of the image
    masks = crf_masks(empty, boxes, image, 0.15, settings, [3.0])
    assert masks[0, 22:38, 22:38].all()  # the retry found the square
