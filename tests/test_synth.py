"""The synthetic world: deterministic, hard enough, and its RLE masks are the drawn shapes."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from bbam_captum.cli.main import main
from bbam_captum.synth import CLASSES, WorldConfig, draw_image


def test_same_seed_same_dataset(tmp_path):
    for name in ("a", "b"):
        assert main(["synth", str(tmp_path / name), "--num-images", "3", "--seed", "7", "--image-size", "96"]) == 0
    a = json.loads((tmp_path / "a" / "annotations.json").read_text())
    b = json.loads((tmp_path / "b" / "annotations.json").read_text())
    assert a == b
    for image in a["images"]:
        pa = np.array(Image.open(tmp_path / "a" / "images" / image["file_name"]))
        pb = np.array(Image.open(tmp_path / "b" / "images" / image["file_name"]))
        assert np.array_equal(pa, pb)
    other = draw_image(8, 0, WorldConfig(image_size=96, max_object_size=80))[0]
    assert not np.array_equal(other, np.array(Image.open(tmp_path / "a" / "images" / "000000.png")))


def test_rle_masks_are_the_drawn_shapes_inside_their_boxes(tiny_synth):
    data = json.loads((tiny_synth / "annotations.json").read_text())
    assert [c["name"] for c in data["categories"]] == list(CLASSES)
    config = WorldConfig(image_size=96, max_object_size=80)
    by_image = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    assert sum(len(v) for v in by_image.values()) >= len(data["images"])  # several objects per image overall
    for image in data["images"]:
        _, objects = draw_image(12345, image["id"] - 1, config)
        anns = by_image.get(image["id"], [])
        assert len(anns) == len(objects)
        for ann, obj in zip(anns, objects):
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(mask, obj.mask)
            assert ann["category_id"] == obj.label + 1 and ann["area"] == int(mask.sum())
            x, y, w, h = ann["bbox"]
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)


def test_box_is_a_poor_mask():
    """Filled boxes cover the objects badly: the world is not solved by 'the box is the mask'."""
    fills = []
    for index in range(40):
        _, objects = draw_image(99, index)
        for obj in objects:
            x1, y1, x2, y2 = obj.bbox_xyxy
            fills.append(obj.mask.sum() / ((x2 - x1) * (y2 - y1)))
    assert np.mean(fills) < 0.6


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--num-images", "0"]) == 2
    assert "--num-images must be at least 1" in capsys.readouterr().err


def test_the_default_world_is_the_bundled_detectors():
    from bbam_captum.synth import WORLDS

    assert WORLDS["shapes"] == WorldConfig()
    assert {"shapes", "camouflage", "photo"} <= set(WORLDS)


def test_every_world_draws_masks_inside_their_boxes_and_differs_from_the_others(tmp_path):
    from bbam_captum.synth import WORLDS

    first_images = {}
    for name, config in WORLDS.items():
        config = config.at_size(96)
        assert main(["synth", str(tmp_path / name), "--world", name, "--num-images", "2", "--seed", "3",
                     "--image-size", "96"]) == 0
        data = json.loads((tmp_path / name / "annotations.json").read_text())
        assert data["info"]["world"] == name and data["annotations"]
        for index in range(2):
            image, objects = draw_image(3, index, config)
            assert image.shape == (96, 96, 3) and image.dtype == np.uint8
            assert np.array_equal(image, np.array(Image.open(tmp_path / name / "images" / f"{index:06d}.png")))
            for obj in objects:
                assert obj.mask.any() and 0 <= obj.label < len(CLASSES)
        first_images[name] = draw_image(3, 0, config)[0]
    names = list(first_images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.array_equal(first_images[a], first_images[b])


def test_camouflage_fills_are_as_coarse_as_the_background():
    """In the camouflage world an object's fill has the background's texture scale; in shapes
    it is finer. Measured as the mean absolute difference of neighbouring pixels inside objects."""
    from bbam_captum.synth import WORLDS

    def fill_roughness(config: WorldConfig) -> float:
        values = []
        for index in range(12):
            image, objects = draw_image(5, index, config)
            grad = np.abs(np.diff(image.astype(np.float32), axis=1)).mean(2)
            for obj in objects:
                inner = obj.mask[:, 1:] & obj.mask[:, :-1]
                if inner.sum() > 50:
                    values.append(float(grad[inner].mean()))
        return float(np.mean(values))

    assert fill_roughness(WORLDS["camouflage"]) < 0.7 * fill_roughness(WORLDS["shapes"])
