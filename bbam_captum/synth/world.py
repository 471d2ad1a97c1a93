"""Synthetic box-supervised worlds with true instance masks.

Each image is a cluttered background with a few objects of seven shape classes that fill
their boxes very differently (a filled box is a poor mask for most of them). Objects range
from about a dozen pixels to most of the image, occlude each other partly, and share the
image with clutter that belongs to no class. The worlds differ in what tells an object
from its background (``WORLDS``):

- ``shapes``: fills are finer textures than the background's; colours come from one
  palette for both, so texture and shape tell, colour does not.
- ``camouflage``: fills are drawn by the same texture process as the background, so only
  the outline tells; the clutter includes pieces and outlines of the shapes themselves.
- ``photo``: background and fills are crops of the photographs that scikit-image ships;
  objects have holes and thin parts, and sizes span a wider range.

Every image is a pure function of ``(seed, index, config)``, so a dataset can be drawn in
any order, in parallel, and regenerated bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from ..errors import SettingsError

CLASSES: tuple[str, ...] = ("ring", "frame", "cross", "star", "triangle", "crescent", "ellipse")

# Objects whose visible part falls below this share of their drawn area are redrawn elsewhere.
_MIN_VISIBLE_FRACTION = 0.55


FILLS = ("fine", "background", "photo")
BACKGROUNDS = ("texture", "photo")

# Photographs shipped inside scikit-image (no download), used as natural textures.
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "coins", "moon",
           "text", "page", "hubble_deep_field", "immunohistochemistry", "retina")


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of a world; the defaults are the ``shapes`` world the bundled detector was trained on.

    Attributes:
        name: the world's name, recorded in the dataset's ``info``.
        fill: how objects are filled: ``"fine"`` (a finer texture than the background's),
            ``"background"`` (the background's own texture process) or ``"photo"``.
        background: ``"texture"`` (coarse two-colour textures) or ``"photo"``.
        part_clutter: how many pieces and outlines of shapes (no class) join the clutter, (min, max).
        holes: objects get holes and thin parts.
    """

    image_size: int = 192
    min_objects: int = 1
    max_objects: int = 5
    min_object_size: float = 12.0
    max_object_size: float = 168.0
    clutter_items: tuple[int, int] = (6, 14)
    name: str = "shapes"
    fill: str = "fine"
    background: str = "texture"
    part_clutter: tuple[int, int] = (0, 0)
    holes: bool = False

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise SettingsError(f"fill must be one of {FILLS}, got {self.fill!r}")
        if self.background not in BACKGROUNDS:
            raise SettingsError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if not 0 < self.min_object_size <= self.max_object_size:
            raise SettingsError(f"expected 0 < min_object_size <= max_object_size, got "
                                f"{self.min_object_size} and {self.max_object_size}")

    def at_size(self, image_size: int) -> "WorldConfig":
        """The same world drawn at another image side, object sizes scaled with it."""
        scale = image_size / self.image_size
        return replace(self, image_size=image_size, min_object_size=self.min_object_size * scale,
                       max_object_size=self.max_object_size * scale)


WORLDS: dict[str, WorldConfig] = {
    "shapes": WorldConfig(),
    "camouflage": WorldConfig(name="camouflage", fill="background", part_clutter=(3, 8)),
    "photo": WorldConfig(name="photo", fill="photo", background="photo", holes=True,
                         min_object_size=10.0, max_object_size=180.0),
}


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


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs as (H, W, 3) float32 RGB."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.float32)
    scale = 512 / max(image.shape[:2])  # one scale for all photographs, and quick crops
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _photo_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop (size, size, 3) float32 of a bundled photograph, rescaled, flipped and tinted."""
    photo = _photo(_PHOTOS[int(rng.integers(len(_PHOTOS)))])
    scale = max(rng.uniform(0.5, 1.5), size / min(photo.shape[:2]))
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, photo.shape[0] - size + 1))
    x = int(rng.integers(0, photo.shape[1] - size + 1))
    crop = photo[y:y + size, x:x + size]
    crop = np.rot90(crop, int(rng.integers(4)))
    tint = rng.uniform(0.6, 1.25, 3).astype(np.float32)  # grey photos get a colour too
    return np.ascontiguousarray(np.clip(crop * tint, 0, 255), dtype=np.float32)


def _background(rng: np.random.Generator, size: int, config: WorldConfig) -> np.ndarray:
    return _photo_texture(rng, size) if config.background == "photo" else _texture(rng, size, fine=False)


def _fill(rng: np.random.Generator, size: int, config: WorldConfig) -> np.ndarray:
    if config.fill == "photo":
        return _photo_texture(rng, size)
    return _texture(rng, size, fine=config.fill == "fine")


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


def _draw_part_clutter(image: np.ndarray, rng: np.random.Generator, count: int, config: WorldConfig) -> None:
    """Pieces of shapes (filled like objects) and shape outlines that belong to no class, in place.

    They look like object parts, so that a detector (and a map of it) cannot tell an object
    by a piece of its outline or fill alone.
    """
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(count):
        label = int(rng.integers(len(CLASSES)))
        r = float(np.exp(rng.uniform(np.log(config.min_object_size), np.log(config.max_object_size)))) / 2.0
        cx, cy = rng.uniform(0, size, 2)
        shape = _shape_mask(label, cx, cy, r, rng, size)
        if rng.random() < 0.5:  # an outline of the shape, a few pixels wide
            width = int(rng.integers(1, 4))
            shape = shape & ~cv2.erode(shape.astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8)).astype(bool)
        # Only a piece: the part of the shape on one side of a random line through it.
        angle = rng.uniform(0, 2 * np.pi)
        shape &= (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle) > rng.uniform(-0.3, 0.5) * r
        fill = _fill(rng, size, config)
        image[shape] = fill[shape]


def _holes_and_thin_parts(mask: np.ndarray, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    """The shape with up to three round holes punched through it and maybe a thin bar sticking out."""
    size = mask.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = mask.copy()
    if r >= 10:
        for _ in range(int(rng.integers(0, 4))):
            ys, xs = np.nonzero(mask)
            pick = int(rng.integers(len(ys)))
            hole_r = r * rng.uniform(0.1, 0.25)
            hole = np.hypot(xx - xs[pick], yy - ys[pick]) <= hole_r
            if (out & ~hole).sum() >= 0.6 * mask.sum():
                out &= ~hole
    if rng.random() < 0.5:  # a thin bar from the centre out past the outline
        angle = rng.uniform(0, 2 * np.pi)
        length = r * rng.uniform(1.2, 1.7)
        end = (cx + length * np.cos(angle), cy + length * np.sin(angle))
        bar = np.zeros_like(mask, np.uint8)
        cv2.line(bar, (int(round(cx)), int(round(cy))), (int(round(end[0])), int(round(end[1]))), 1,
                 int(rng.integers(2, 4)))
        out |= bar.astype(bool)
    return out


def draw_image(seed: int, index: int, config: WorldConfig = WorldConfig()) -> tuple[np.ndarray, list[SynthObject]]:
    """Draws image ``index`` of the dataset with ``seed``.

    Returns:
        image: (H, W, 3) uint8 RGB, H = W = ``config.image_size``.
        objects: the objects in drawing order, each with its visible mask (H, W) bool.
    """
    rng = np.random.default_rng([seed, index])
    size = config.image_size
    image = _background(rng, size, config)
    _draw_clutter(image, rng, int(rng.integers(*config.clutter_items)))
    if config.part_clutter[1] > 0:
        _draw_part_clutter(image, rng, int(rng.integers(config.part_clutter[0], config.part_clutter[1] + 1)), config)

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
        if config.holes:
            mask = _holes_and_thin_parts(mask, cx, cy, r, rng)
        if mask.sum() < 0.25 * config.min_object_size**2:
            continue
        # The new object occludes the earlier ones; each must keep most of itself visible.
        if any((obj.mask & ~mask).sum() < _MIN_VISIBLE_FRACTION * full.sum() for obj, full in zip(objects, full_masks)):
            continue
        for obj in objects:
            obj.mask &= ~mask
        fill = _fill(rng, size, config)
        image[mask] = fill[mask]
        objects.append(SynthObject(label, mask))
        full_masks.append(mask.copy())

    image += rng.normal(0, 4.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), objects

