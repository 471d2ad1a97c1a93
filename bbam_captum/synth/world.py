"""A synthetic box-supervised world with true instance masks.

Each image is a textured, cluttered background with a few textured objects of seven
shape classes that fill their boxes very differently (a filled box is a poor mask for
most of them). Colours are drawn from one palette for objects and background alike, so
no colour threshold separates them; objects differ from the background only by shape
and texture. Objects range from about 12 px to most of the image, occlude each other
partly, and share the image with clutter that belongs to no class.

Every image is a pure function of ``(seed, index)``, so a dataset can be drawn in any
order, in parallel, and regenerated bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("ring", "frame", "cross", "star", "triangle", "crescent", "ellipse")

# Objects whose visible part falls below this share of their drawn area are redrawn elsewhere.
_MIN_VISIBLE_FRACTION = 0.55


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the world; the defaults are what the bundled detector was trained on."""

    image_size: int = 192
    min_objects: int = 1
    max_objects: int = 5
    min_object_size: float = 12.0
    max_object_size: float = 168.0
    clutter_items: tuple[int, int] = (6, 14)


@dataclass
class SynthObject:
    """One drawn object: its class index into ``CLASSES`` and its visible mask (H, W) bool."""

    label: int
    mask: np.ndarray

    @property
    def bbox_xyxy(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour from the palette shared by objects and background: (3,) float in 0..255."""
    hue = rng.uniform(0, 180)
    sat = rng.uniform(60, 230)
    val = rng.uniform(60, 240)
    hsv = np.array([[[hue, sat, val]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, size: int, fine: bool) -> np.ndarray:
    """A two-colour texture (size, size, 3) float32: gratings, checks or blotches.

    Background textures are coarse (``fine=False``); object fills are finer, which is the
    cue a detector can learn while colours stay uninformative.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c1, c2 = _random_colour(rng), _random_colour(rng)
    kind = rng.integers(3)
    period = rng.uniform(3.0, 7.0) if fine else rng.uniform(14.0, 40.0)
    if kind == 0:  # oriented grating
        theta = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period + phase)
    elif kind == 1:  # checks
        t = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.6)
    else:  # blotches: smoothed noise
        noise = rng.random((size, size), dtype=np.float32)
        t = cv2.GaussianBlur(noise, (0, 0), period / 3.0)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c1 * t[..., None] + c2 * (1.0 - t[..., None])


def _polygon_mask(size: int, points: np.ndarray) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]], dtype=np.float64)


def _shape_mask(label: int, cx: float, cy: float, r: float, rng: np.random.Generator, size: int) -> np.ndarray:
    """The full (unoccluded) mask (size, size) bool of a shape of class ``label``.

    ``r`` is half the shape's extent, so the shape spans about 2r pixels.
    """
    name = CLASSES[label]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if name == "ring":
        d = np.hypot(dx, dy)
        width = max(2.0, r * rng.uniform(0.25, 0.4))
        return (d <= r) & (d >= r - width)
    if name == "frame":
        hx, hy = r, r * rng.uniform(0.7, 1.0)
        if rng.random() < 0.5:
            hx, hy = hy, hx
        width = max(2.0, r * rng.uniform(0.2, 0.32))
        outer = (np.abs(dx) <= hx) & (np.abs(dy) <= hy)
        inner = (np.abs(dx) <= hx - width) & (np.abs(dy) <= hy - width)
        return outer & ~inner
    if name == "cross":
        arm = max(2.0, r * rng.uniform(0.28, 0.42))
        angle = rng.choice([0.0, np.pi / 4])
        c, s = np.cos(angle), np.sin(angle)
        u, v = dx * c + dy * s, -dx * s + dy * c
        reach = r if angle == 0.0 else r * 1.2
        return ((np.abs(u) <= reach) & (np.abs(v) <= arm)) | ((np.abs(v) <= reach) & (np.abs(u) <= arm))
    if name == "star":
        n = 5
        inner = rng.uniform(0.35, 0.5)
        angles = np.arange(2 * n) * np.pi / n + rng.uniform(0, 2 * np.pi)
        radii = np.where(np.arange(2 * n) % 2 == 0, r, r * inner)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        return _polygon_mask(size, pts)
    if name == "triangle":
        angles = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(0, 2 * np.pi)
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
        return _polygon_mask(size, pts)
    if name == "crescent":
        offset = r * rng.uniform(0.35, 0.55)
        angle = rng.uniform(0, 2 * np.pi)
        ox, oy = offset * np.cos(angle), offset * np.sin(angle)
        return (np.hypot(dx, dy) <= r) & (np.hypot(dx - ox, dy - oy) > r * rng.uniform(0.8, 0.95))
    if name == "ellipse":
        ax, ay = r, r * rng.uniform(0.45, 0.85)
        if rng.random() < 0.5:
            ax, ay = ay, ax
        return (dx / ax) ** 2 + (dy / ay) ** 2 <= 1.0
    raise ValueError(f"unknown class index {label}; expected 0..{len(CLASSES) - 1}")


def _draw_clutter(image: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Lines, bars and scribbles that belong to no class, painted into ``image`` in place."""
    size = image.shape[0]
    for _ in range(count):
        colour = tuple(float(c) for c in _random_colour(rng))
        kind = rng.integers(3)
        if kind == 0:
            p1 = tuple(int(v) for v in rng.integers(0, size, 2))
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(image, p1, p2, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:  # a small solid bar: no class is a solid rectangle
            x, y = rng.integers(0, size, 2)
            w, h = rng.integers(3, 18, 2)
            cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
        else:
            pts = np.cumsum(rng.normal(0, 6, (8, 2)), 0) + rng.uniform(0, size, 2)
            cv2.polylines(image, [pts.astype(np.int32)], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA)


def draw_image(seed: int, index: int, config: WorldConfig = WorldConfig()) -> tuple[np.ndarray, list[SynthObject]]:
    """Draws image ``index`` of the dataset with ``seed``.

    Returns:
        image: (H, W, 3) uint8 RGB, H = W = ``config.image_size``.
        objects: the objects in drawing order, each with its visible mask (H, W) bool.
    """
    rng = np.random.default_rng([seed, index])
    size = config.image_size
    image = _texture(rng, size, fine=False)
    _draw_clutter(image, rng, int(rng.integers(*config.clutter_items)))

    objects: list[SynthObject] = []
    full_masks: list[np.ndarray] = []
    target = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(target * 6):  # bounded retries
        if len(objects) == target:
            break
        label = int(rng.integers(len(CLASSES)))
        extent = float(np.exp(rng.uniform(np.log(config.min_object_size), np.log(config.max_object_size))))
        r = extent / 2.0
        cx, cy = rng.uniform(r * 0.6, size - r * 0.6, 2)
        mask = _shape_mask(label, cx, cy, r, rng, size)
        if mask.sum() < 0.25 * config.min_object_size**2:
            continue
        # The new object occludes the earlier ones; each must keep most of itself visible.
        if any((obj.mask & ~mask).sum() < _MIN_VISIBLE_FRACTION * full.sum() for obj, full in zip(objects, full_masks)):
            continue
        for obj in objects:
            obj.mask &= ~mask
        fill = _texture(rng, size, fine=True)
        image[mask] = fill[mask]
        objects.append(SynthObject(label, mask))
        full_masks.append(mask.copy())

    image += rng.normal(0, 4.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), objects

