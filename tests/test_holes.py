"""Opening filled-in holes: a ring's hole taken out of a mask that claims it, solid objects left whole."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bbam_captum.labels import IGNORE, LabelSettings, box_segment_pools, pseudo_masks, semantic_label
from bbam_captum.labels.holes import open_holes

SIZE = 96
BOX = np.array([[20.0, 20.0, 76.0, 76.0]])


def _disc(radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - 47.5) ** 2 + (xx - 47.5) ** 2 <= radius ** 2


def _scene(hole_colour: tuple[int, int, int], seed: int = 0, inner: float = 13) -> tuple[np.ndarray, np.ndarray]:
    """A noisy blue background with a red ring (outer radius 27, inner radius ``inner``) whose
    hole shows ``hole_colour``; returns the image and the ring's true mask."""
    rng = np.random.default_rng(seed)
    image = np.empty((SIZE, SIZE, 3), np.float64)
    image[:] = (40, 60, 170)
    ring = _disc(27) & ~_disc(inner)
    image[ring] = (200, 40, 40)
    image[_disc(inner)] = hole_colour
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), ring


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_hole_that_shows_the_surroundings_is_opened():
    image, ring = _scene(hole_colour=(40, 60, 170))
    filled = _disc(27)[None]  # the mask claims the hole
    segments = box_segment_pools(image, BOX)[0]
    opened = open_holes(filled, BOX, image, segments, rim=0.12)
    assert not (opened & ~filled).any(), "opening only takes pixels out"
    assert _iou(filled[0], ring) < 0.8 < _iou(opened[0], ring)
    assert filled.sum() == _disc(27).sum(), "the input is left as it was"


def test_a_thin_ring_is_opened_past_its_rim_and_the_rim_stays():
    # a ring 5 px thick in a 56 px box: the rim (12 % of the side, 6.7 px) reaches into the hole,
    # so the hole's segment runs into the rim; its part clear of the rim is opened all the same
    image, ring = _scene(hole_colour=(40, 60, 170), inner=22)
    filled = _disc(27)[None]
    opened = open_holes(filled, BOX, image, box_segment_pools(image, BOX)[0], rim=0.12)
    assert opened[0][_disc(27) & ~_disc(21)].all(), "the rim is never cut"
    assert not opened[0][_disc(19)].any()
    assert _iou(filled[0], ring) < 0.4
    assert _iou(opened[0], ring) > 0.6


def test_an_inner_part_that_looks_like_the_object_stays():
    # the "hole" is the object's own colour: a solid disc, nothing to open
    image, _ = _scene(hole_colour=(200, 40, 40))
    solid = _disc(27)[None]
    opened = open_holes(solid, BOX, image, box_segment_pools(image, BOX)[0], rim=0.12)
    assert opened.sum() >= 0.98 * solid.sum()


def test_open_holes_checks_its_inputs():
    image, _ = _scene(hole_colour=(40, 60, 170))
    segments = box_segment_pools(image, BOX)[0]
    masks = _disc(27)[None]
    with pytest.raises(ValueError, match="one box per mask"):
        open_holes(masks, np.zeros((2, 4)), image, segments, rim=0.12)
    with pytest.raises(ValueError, match="same size"):
        open_holes(masks, BOX, image[:50], segments, rim=0.12)
    with pytest.raises(ValueError, match="rim must lie"):
        open_holes(masks, BOX, image, segments, rim=0.6)
    empty = np.zeros_like(masks)
    assert not open_holes(empty, BOX, image, segments, rim=0.12).any()


def test_the_chain_labels_an_opened_hole_as_background():
    image, ring = _scene(hole_colour=(40, 60, 170))
    maps = _disc(30)[None].astype(np.float32)  # a coarse map over the whole ring, hole included
    settings = LabelSettings(crf=False, refine=False, blur_sigma=0.0, theta_fg=0.5, theta_bg=0.5,
                             instance_threshold=0.5)
    closed = pseudo_masks(maps, BOX, dataclasses.replace(settings, open_holes=False), image)
    instance, foreground, uncertain = pseudo_masks(maps, BOX, settings, image)
    hole = _disc(12)
    assert closed[0][0][hole].all(), "without the rule the map's mask claims the hole"
    assert not instance[0][hole].any() and not foreground[0][hole].any() and not uncertain[0][hole].any()
    label = semantic_label(foreground, uncertain, BOX, np.array([0]))
    assert (label[hole] == 0).all() and not (label[hole] == IGNORE).any()
    assert (label[ring & _disc(25) & ~_disc(16)] == 1).all()
