"""BBAM on torchvision's Faster R-CNN and Mask R-CNN (random weights, no download)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torchvision.models import detection
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import clip_boxes_to_image

from bbam_captum import BBAM
from bbam_captum.detectors import TorchvisionRCNNAdapter, UnsupportedDetectorError
from bbam_captum.detectors.base import Crop

FAST = dict(steps=2, num_proposals=16, max_positives=8)
SIDE = 160  # image side; the models resize it by 1.5 (min_size 240) so that resizing is exercised


def _model(builder: str = "fasterrcnn_resnet50_fpn", min_size: int = 240) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=8, min_size=min_size,
                                       max_size=400).eval()


@pytest.fixture(scope="module")
def faster_rcnn() -> torch.nn.Module:
    return _model()


def _object_on_mu(adapter: TorchvisionRCNNAdapter) -> tuple[torch.Tensor, torch.Tensor]:
    """An image that is the model's mean colour but for a noise square (the object), and
    RoIs on it (Tensor[2, 5], image pixels): what BBAM's perturbation leaves of an image."""
    g = torch.Generator().manual_seed(0)
    image = adapter.pixel_mean().expand(1, 3, SIDE, SIDE).clone()
    lo, hi = 64, 96
    image[..., lo:hi, lo:hi] = torch.randint(0, 256, (3, hi - lo, hi - lo), generator=g).float()
    rois = torch.tensor([[0.0, lo, lo, hi, hi], [0.0, lo + 3, lo + 2, hi - 5, hi - 1]])
    return image, rois


def _model_forward(model: torch.nn.Module, image: torch.Tensor,
                   rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own second stage on the full image, as its forward runs it: class
    probabilities [R, C + 1] (background first) and boxes [R, C + 1, 4] in image pixels."""
    images, _ = model.transform([image[0] / 255.0])
    features = model.backbone(images.tensors)
    proposals = resize_boxes(rois[:, 1:], image.shape[-2:], images.image_sizes[0])
    heads = model.roi_heads
    logits, regression = heads.box_predictor(heads.box_head(heads.box_roi_pool(features, [proposals],
                                                                               images.image_sizes)))
    boxes = clip_boxes_to_image(heads.box_coder.decode(regression, [proposals]), images.image_sizes[0])
    boxes = torch.stack([resize_boxes(b, images.image_sizes[0], image.shape[-2:]) for b in boxes])
    return logits.softmax(-1), boxes  # boxes [R, C + 1, 4]


def _adapter_boxes(adapter: TorchvisionRCNNAdapter, rois: torch.Tensor, deltas: torch.Tensor, height: int,
                   width: int) -> torch.Tensor:
    """The adapter's regressed boxes [R, C, 4] for every class, image pixels."""
    return torch.stack([adapter.decode(rois[:, 1:], deltas[:, c], height, width)
                        for c in range(adapter.num_classes)], 1)


@pytest.mark.parametrize("builder", ["fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
                                     "fasterrcnn_mobilenet_v3_large_fpn", "maskrcnn_resnet50_fpn"])
def test_full_image_matches_the_models_forward(builder):
    """Normalisation, resizing, padding, pooling levels, class order and decoding as the model's own."""
    model = _model(builder, min_size=160)
    adapter = TorchvisionRCNNAdapter(model)
    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (1, 3, 64, 80), generator=g).float()  # resized by 2.5 to 160 x 200
    rois = torch.tensor([[0.0, 10.0, 12.0, 50.0, 60.0], [0.0, 30.0, 20.0, 78.0, 62.0], [0.0, 2.0, 3.0, 9.0, 8.0]])
    with torch.no_grad():
        probs, boxes = _model_forward(model, image, rois)
        out = adapter.roi_outputs(adapter.features(image), rois)
        x, scale = adapter.preprocess(image)
        own, _ = model.transform([image[0] / 255.0])
    assert torch.equal(x, own.tensors) and scale == (2.5, 2.5)
    assert out.probs.shape == (3, 8) and out.deltas.shape == (3, 7, 4)
    assert torch.allclose(out.probs[:, :-1], probs[:, 1:], atol=1e-6)
    assert torch.allclose(out.probs[:, -1], probs[:, 0], atol=1e-6)  # background last
    assert torch.allclose(_adapter_boxes(adapter, rois, out.deltas, 64, 80), boxes[:, 1:], atol=1e-3)


def test_crop_matches_the_models_forward_on_the_full_image(faster_rcnn):
    """On a crop from :meth:`crop` the RoI head gives the class probabilities and boxes of
    the model's own forward on the full image; a crop off the feature grid does not."""
    adapter = TorchvisionRCNNAdapter(faster_rcnn)
    image, rois = _object_on_mu(adapter)
    crop = adapter.crop(torch.tensor([24.0, 24.0, 136.0, 136.0]), SIDE, SIDE)
    assert crop == Crop(left=32, top=32, width=192, height=192)  # of a 256 x 256 input (240 padded)
    off_grid = Crop(crop.left + 16, crop.top, crop.width, crop.height)
    with torch.no_grad():
        probs, boxes = _model_forward(faster_rcnn, image, rois)
        on = adapter.roi_outputs(adapter.features(image, [crop]), rois)
        off = adapter.roi_outputs(adapter.features(image, [off_grid]), rois)
    assert probs[:, 1:].max() > 0.5  # the check sees a confident class, not a flat one
    assert (on.probs[:, :-1] - probs[:, 1:]).abs().max() < 2e-3
    assert (_adapter_boxes(adapter, rois, on.deltas, SIDE, SIDE) - boxes[:, 1:]).abs().max() < 0.2  # image pixels
    assert (off.probs[:, :-1] - probs[:, 1:]).abs().max() > 0.02
    assert (_adapter_boxes(adapter, rois, off.deltas, SIDE, SIDE) - boxes[:, 1:]).abs().max() > 2.0


def test_crop_lies_on_the_feature_grid(faster_rcnn):
    adapter = TorchvisionRCNNAdapter(faster_rcnn)  # coarsest RoI level: stride 32; 160 px -> 240 px input
    assert adapter.resized_size(SIDE, SIDE) == (240, 240)
    assert adapter.crop(torch.tensor([-50.0, -50.0, 500.0, 500.0]), SIDE, SIDE) == Crop(0, 0, 256, 256)
    assert adapter.crop(torch.tensor([150.0, 150.0, 151.0, 151.0]), SIDE, SIDE) == Crop(224, 224, 32, 32)


def test_gradients_reach_the_mask_inside_the_crop_only(faster_rcnn):
    adapter = TorchvisionRCNNAdapter(faster_rcnn)
    image, rois = _object_on_mu(adapter)
    crop = adapter.crop(torch.tensor([40.0, 40.0, 120.0, 120.0]), SIDE, SIDE)
    mask = torch.ones(1, 1, SIDE, SIDE, requires_grad=True)
    with adapter.frozen():
        perturbed = image * mask + adapter.pixel_mean() * (1 - mask)
        out = adapter.roi_outputs(adapter.features(perturbed, [crop]), rois)
        (out.probs[:, :-1].max(1).values.sum() + out.deltas.abs().sum()).backward()
    grad = mask.grad[0, 0].abs()
    # the crop in image pixels (the input is the image resized by 1.5)
    y0, x0 = math.floor(crop.top / 1.5), math.floor(crop.left / 1.5)
    y1, x1 = math.ceil((crop.top + crop.height) / 1.5), math.ceil((crop.left + crop.width) / 1.5)
    assert torch.isfinite(grad).all() and grad[y0:y1, x0:x1].sum() > 0
    outside = grad.clone()
    outside[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = 0  # one pixel of bilinear blending at the crop's edge
    assert outside.max() == 0
    assert all(p.grad is None for p in faster_rcnn.parameters())


@pytest.mark.slow
def test_bbam_on_a_torchvision_model(faster_rcnn):
    image, _ = _object_on_mu(TorchvisionRCNNAdapter(faster_rcnn))
    boxes = torch.tensor([[64.0, 64.0, 96.0, 96.0], [20.0, 30.0, 70.0, 90.0]])
    bbam = BBAM(faster_rcnn)
    assert isinstance(bbam.adapter, TorchvisionRCNNAdapter)
    # without the L1 and TV terms only the detector's gradients can move the masks off their start
    moved, records = bbam.attribute(image, boxes, target=[1, 4], l1_coef=0.0, tv_coef=0.0, return_records=True,
                                    **FAST)
    start = bbam.attribute(image, boxes, target=[1, 4], **{**FAST, "steps": 1, "lr": 1e-12})  # the start, in effect
    assert moved.shape == start.shape == (2, 1, SIDE, SIDE) and 0 <= moved.min() and moved.max() <= 1
    assert [r.target for r in records] == [1, 4] and all(r.steps == 2 for r in records)
    assert ((moved - start).flatten(1).abs().amax(1) > 0.05).all()
    assert all(p.grad is None for p in faster_rcnn.parameters())
    assert all(p.requires_grad for p in faster_rcnn.parameters())  # restored afterwards


def test_detect_maps_labels_to_object_classes(faster_rcnn):
    adapter = TorchvisionRCNNAdapter(faster_rcnn)
    image, _ = _object_on_mu(adapter)
    with torch.no_grad():
        own = faster_rcnn([image[0] / 255.0])[0]
    det = adapter.detect(image[0], score_thr=0.0)
    assert len(det.boxes) == len(own["boxes"]) > 0
    assert torch.equal(det.labels, own["labels"] - 1) and det.labels.min() >= 0 and det.labels.max() < 7
    assert torch.allclose(det.boxes, own["boxes"]) and torch.allclose(det.scores, own["scores"])
    assert not faster_rcnn.training


def test_class_names(faster_rcnn):
    assert TorchvisionRCNNAdapter(faster_rcnn).class_names == tuple("0123456")
    names = ["a", "b", "c", "d", "e", "f", "g"]
    assert TorchvisionRCNNAdapter(faster_rcnn, names).class_names == tuple(names)
    # torchvision's weights.meta["categories"] lists background first
    assert TorchvisionRCNNAdapter(faster_rcnn, ["__background__", *names]).class_names == tuple(names)
    with pytest.raises(ValueError, match="7 object classes"):
        TorchvisionRCNNAdapter(faster_rcnn, names[:3])


def test_box_gradcam_on_a_torchvision_model(faster_rcnn):
    """BoxGradCAM takes a torchvision model too: its layer is the FPN output that torchvision's own
    level mapper assigns to the box (small boxes a fine level, large ones a coarse one)."""
    from torchvision.ops.poolers import LevelMapper

    from bbam_captum import BoxGradCAM

    cam = BoxGradCAM(faster_rcnn)
    assert isinstance(cam.adapter, TorchvisionRCNNAdapter)
    image, _ = _object_on_mu(cam.adapter)
    boxes = torch.tensor([[64.0, 64.0, 96.0, 96.0], [0.0, 0.0, 159.0, 159.0]])
    maps = cam.attribute(image, boxes, target=[1, 1])
    assert maps.shape == (2, 1, SIDE, SIDE) and 0 <= float(maps.min()) <= float(maps.max()) <= 1
    blocks = list(faster_rcnn.backbone.fpn.layer_blocks)
    levels = [blocks.index(cam.adapter.gradcam_layer(b, SIDE, SIDE)) for b in boxes]
    mapper = faster_rcnn.roi_heads.box_roi_pool.map_levels
    assert isinstance(mapper, LevelMapper)
    assert levels == [int(mapper([b[None] * 1.5])[0]) for b in boxes]  # the model resizes 160 -> 240
    assert levels[0] < levels[1]


def test_unsupported_torchvision_model(faster_rcnn):
    """Both adapters refuse what they cannot explain with one error type (a TypeError, as before)."""
    ssd = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    with pytest.raises(UnsupportedDetectorError, match="two-stage"):
        BBAM(ssd)
    with pytest.raises(UnsupportedDetectorError, match="FasterRCNN"):
        TorchvisionRCNNAdapter(ssd)
    no_cls_score = copy.deepcopy(faster_rcnn)
    no_cls_score.roi_heads.box_predictor = torch.nn.Identity()
    with pytest.raises(UnsupportedDetectorError, match="cls_score"):
        BBAM(no_cls_score)
    assert issubclass(UnsupportedDetectorError, TypeError)


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    """Two 96 px images of the synthetic world (COCO), and a torchvision model whose classes are the world's."""
    from bbam_captum.synth import CLASSES, WorldConfig, write_dataset

    data = tmp_path_factory.mktemp("tv_synth")
    write_dataset(data, num_images=2, seed=7, config=WorldConfig(image_size=96, max_object_size=64),
                  show_progress=False)
    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                                        num_classes=len(CLASSES) + 1, min_size=128, max_size=128,
                                                        box_detections_per_img=3)
    return data, TorchvisionRCNNAdapter(model.eval(), class_names=CLASSES)


@pytest.mark.slow
def test_generate_labels_from_python(synth_pair, tmp_path):
    import json

    import numpy as np

    from bbam_captum.labels import LabelSettings
    from bbam_captum.pipeline import generate_labels
    from bbam_captum.synth import CLASSES

    data, adapter = synth_pair
    ann = json.loads((data / "annotations.json").read_text())
    out = tmp_path / "out"
    fast_labels = LabelSettings(crf=False, refine=False)  # the label chain has tests of its own
    summary = generate_labels(adapter, data / "annotations.json", data / "images", out, fast_labels,
                              show_progress=False, steps=2, num_proposals=16)
    assert summary["images_labelled"] == 2 and summary["boxes"] == len(ann["annotations"]) and not summary["failures"]
    for image in ann["images"]:
        with np.load(out / "maps" / f"{image['id']}.npz") as stored:
            count = sum(a["image_id"] == image["id"] for a in ann["annotations"])
            assert stored["maps"].shape == (count, image["height"], image["width"])
            # categories map onto the detector's classes by name
            names = {c["id"]: c["name"] for c in ann["categories"]}
            wanted = [CLASSES.index(names[a["category_id"]]) for a in ann["annotations"]
                      if a["image_id"] == image["id"]]
            assert stored["classes"].tolist() == wanted
    run = json.loads((out / "run.json").read_text())
    assert run["class_names"] == list(CLASSES) and run["detector_digest"].startswith("model:")
    assert (out / "coco" / "instances.json").is_file() and (out / "mmseg" / "train.txt").is_file()
    # a rerun with the same model resumes; other weights are another detector
    again = generate_labels(adapter, data / "annotations.json", data / "images", out, fast_labels,
                            show_progress=False, steps=2, num_proposals=16)
    assert again["images_computed_this_run"] == 0 and not again["failures"]
    # another optimiser (an extension point) makes other maps: not reused as the method's, and back
    from bbam_captum import BBAM
    from bbam_captum.attr.bbam import optimise_masks
    from bbam_captum.pipeline import relabel

    def counted_optimiser(*args, **kwargs):
        return optimise_masks(*args, **kwargs)

    custom = BBAM(adapter, optimise_masks=counted_optimiser)
    assert BBAM(adapter).extensions == {} and set(custom.extensions) == {"optimise_masks"}
    other = generate_labels(custom, data / "annotations.json", data / "images", out, fast_labels,
                            show_progress=False, steps=2, num_proposals=16)
    assert other["images_computed_this_run"] == 2
    assert json.loads((out / "run.json").read_text())["bbam_extensions"] == custom.extensions
    assert not relabel(out, fast_labels, show_progress=False)["failures"]  # the keys as run.json names them
    assert generate_labels(adapter, data / "annotations.json", data / "images", out, fast_labels, show_progress=False,
                           steps=2, num_proposals=16)["images_computed_this_run"] == 2
    with torch.no_grad():
        adapter.model.roi_heads.box_predictor.cls_score.bias.add_(1.0)
    try:
        from bbam_captum.detectors import detector_digest

        assert detector_digest(adapter) != run["detector_digest"]
    finally:
        with torch.no_grad():
            adapter.model.roi_heads.box_predictor.cls_score.bias.sub_(1.0)
    with pytest.raises(TypeError, match="unknown BBAM settings"):
        generate_labels(adapter, data / "annotations.json", data / "images", out, stpes=2)


@pytest.mark.slow
def test_explain_from_python(synth_pair, tmp_path):
    from bbam_captum.pipeline import explain

    data, adapter = synth_pair
    image_file = sorted((data / "images").iterdir())[0]
    figure = tmp_path / "fig" / "explain.png"
    result = explain(adapter, image_file, torch.tensor([10.0, 12.0, 60.0, 70.0]), out=figure, steps=2,
                     num_proposals=16)
    assert result.maps.shape == (1, 1, 96, 96) and figure.stat().st_size > 0
    assert result.labels[0] in adapter.class_names and result.scores is None
    detected = explain(adapter, image_file, score_thr=0.0, steps=1, num_proposals=8)
    assert detected.scores is not None and len(detected.labels) == detected.maps.shape[0] == len(detected.boxes)
    assert all(label.split()[0] in adapter.class_names for label in detected.labels)
