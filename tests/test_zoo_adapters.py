"""The MMDetection adapter on RoI heads beyond Faster R-CNN's (SABL, Grid R-CNN, refused
query heads), and its loud failures on configurations it cannot reproduce.

Detectors are built from MMDetection's own shipped configs with random weights and a
tiny backbone (ResNet-18 at 16 channels, 32-channel FPN and heads) for speed.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from bbam_captum import BBAM
from bbam_captum.ops import to_rois
from bbam_captum.detectors import MMDetTwoStageAdapter, UnsupportedDetectorError
from bbam_captum.ops import perturb

HEIGHT, WIDTH = 72, 96  # resized by the test pipeline (scale 128) by 4/3, to 96 x 128
BOX = torch.tensor([30.0, 18.0, 66.0, 52.0])


def shipped_config(rel: str) -> Config:
    """One of the installed MMDetection's configs, shrunk: ResNet-18 at 16 channels, 32-channel
    neck and heads, a test Resize to 128 px, no pretrained weights."""
    import mmdet

    cfg = Config.fromfile(str(Path(mmdet.__file__).parent / ".mim" / "configs" / rel))
    model = cfg.model
    model.backbone.update(depth=18, base_channels=16, init_cfg=None)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    _shrink(model.rpn_head)
    _shrink(model.roi_head)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["scale"] = (128, 128)
    return cfg


def _shrink(node) -> None:
    """Channel widths of 256 -> 32 and 1024 -> 64; Grid R-CNN's point features 64 -> 8 (72 channels, GN of 36)."""
    if isinstance(node, (list, tuple)):
        for item in node:
            _shrink(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "point_feat_channels":
                node[key] = 8
            elif key.endswith("channels") and value in (256, 1024):
                node[key] = 32 if value == 256 else 64
            else:
                _shrink(value)


def build(cfg: Config) -> torch.nn.Module:
    from mmdet.apis import init_detector

    torch.manual_seed(0)
    return init_detector(cfg, None, device="cpu")


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=g) * 255, size=(HEIGHT, WIDTH),
                                           mode="bilinear", align_corners=False)[0]


HEADS = {"sabl": "sabl/sabl-faster-rcnn_r50_fpn_1x_coco.py", "grid": "grid_rcnn/grid-rcnn_r50_fpn_gn-head_2x_coco.py"}


@pytest.fixture(scope="module", params=list(HEADS))
def head_model(request) -> tuple[str, torch.nn.Module]:
    return request.param, build(shipped_config(HEADS[request.param])).eval()


def model_own_outputs(adapter: MMDetTwoStageAdapter, image: torch.Tensor, rois: torch.Tensor):
    """Class probabilities [R, C + 1] and boxes [R, 4] (image pixels) from the model's own
    RoI head (``predict_bbox`` without NMS, rescaled), on the adapter's preprocessed input."""
    from mmengine.structures import InstanceData

    model = adapter.model
    x, (sx, sy) = adapter.preprocess(image[None])
    meta = {"img_shape": tuple(x.shape[-2:]), "scale_factor": (sx, sy)}
    proposals = InstanceData(bboxes=rois[:, 1:] * rois.new_tensor([sx, sy, sx, sy]))
    result = model.roi_head.predict_bbox(model.extract_feat(x), [meta], [proposals], rcnn_test_cfg=None,
                                         rescale=True)[0]
    return result.scores, result.bboxes


def adapter_outputs(adapter: MMDetTwoStageAdapter, image: torch.Tensor, rois: torch.Tensor, target: int, crops=None):
    out = adapter.roi_outputs(adapter.features(image[None], crops), rois)
    deltas = out.deltas[torch.arange(len(rois)), target]
    return out.probs, adapter.decode(rois[:, 1:], deltas, HEIGHT, WIDTH)


def test_head_outputs_agree_with_the_model_on_the_full_image_and_the_crop(head_model, image):
    """For SABL and Grid R-CNN, the adapter's class probability and box for a RoI are the
    model's own; on a crop around the RoI they are the model's on the full image painted
    with mu outside the crop (only padding at the crop's border differs)."""
    kind, model = head_model
    adapter = MMDetTwoStageAdapter(model)
    assert adapter._box_kind == kind
    rois = to_rois([torch.stack([BOX, BOX + torch.tensor([-6.0, 4.0, 3.0, 8.0])])])
    with torch.no_grad(), adapter.frozen():
        own_probs, own_boxes = model_own_outputs(adapter, image, rois)
        target = int(own_probs[0, :-1].argmax())
        probs, boxes = adapter_outputs(adapter, image, rois, target)
        assert torch.allclose(probs, own_probs, atol=1e-5)
        assert torch.allclose(boxes, own_boxes, atol=1e-3)
        assert (boxes - rois[:, 1:]).abs().max() > 1e-2  # the head moved the boxes: the comparison means something

        small = torch.tensor([62.0, 42.0, 80.0, 58.0])
        rois = to_rois([small[None]])
        side = small[2:] - small[:2]
        crop = adapter.crop(torch.cat([small[:2] - side / 2, small[2:] + side / 2]), HEIGHT, WIDTH)
        assert crop.width * crop.height < 96 * 128  # a real crop of the 96 x 128 input
        sx, sy = adapter.input_scale(HEIGHT, WIDTH)
        window = (..., slice(round(crop.top / sy), round((crop.top + crop.height) / sy)),
                  slice(round(crop.left / sx), round((crop.left + crop.width) / sx)))
        painted = adapter.pixel_mean().expand_as(image).clone()
        painted[window] = image[window]
        own_probs, own_boxes = model_own_outputs(adapter, painted, rois)
        probs, boxes = adapter_outputs(adapter, image, rois, target, [crop])
    assert (probs[0] - own_probs[0]).abs().max() < 0.02
    # Grid R-CNN's box is an argmax over near-flat random heatmaps: the slightest change at
    # the crop's border moves a grid point by a cell or more; a wrong crop offset would move
    # the box by tens of pixels
    tolerance = 1.0 if kind == "sabl" else 0.25 * float(side.min())
    assert (boxes[0] - own_boxes[0]).abs().max() < tolerance  # pixels


def test_bbam_on_head_gives_maps_and_gradients_reach_the_mask(head_model, image):
    kind, model = head_model
    bbam = BBAM(model)
    maps = bbam.attribute(image, torch.stack([BOX, torch.tensor([5.0, 5.0, 40.0, 30.0])]), steps=2,
                          num_proposals=20, max_positives=4)
    assert maps.shape == (2, 1, HEIGHT, WIDTH)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1

    adapter = bbam.adapter
    mask = torch.full((1, 1, HEIGHT, WIDTH), 0.5, requires_grad=True)
    with adapter.frozen():
        out = adapter.roi_outputs(adapter.features(perturb(image[None], mask, adapter.pixel_mean())),
                                  to_rois([BOX[None]]))
        box_grad, = torch.autograd.grad(out.deltas[0, 0].sum(), mask, retain_graph=True)
        cls_grad, = torch.autograd.grad(out.probs[0, 0], mask)
    assert box_grad.abs().sum() > 0, f"{kind}: no gradient from the box to the mask"
    assert cls_grad.abs().sum() > 0, f"{kind}: no gradient from the class score to the mask"


def test_query_based_head_is_refused_at_construction():
    model = build(shipped_config("sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py"))
    with pytest.raises(UnsupportedDetectorError, match="SparseRoIHead .*query-based.*no class score and box"):
        BBAM(model)


def test_crops_of_deformable_backbones_are_large_enough_for_their_kernels(image):
    """mmcv's deformable convolutions refuse maps smaller than 3 x 3: a crop around a small
    box spans 3 cells of the coarsest grid, and the adapter runs on it."""
    cfg = shipped_config("dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py")
    cfg.model.backbone.depth = 50  # ResNet-18's blocks take no DCN; 16 base channels: stages of 64..512
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    adapter = MMDetTwoStageAdapter(build(cfg).eval())
    crop = adapter.crop(torch.tensor([62.0, 42.0, 70.0, 50.0]), HEIGHT, WIDTH)
    assert (crop.width, crop.height) == (96, 96)
    with torch.no_grad(), adapter.frozen():
        out = adapter.roi_outputs(adapter.features(image[None], [crop]),
                                  to_rois([torch.tensor([[62.0, 42.0, 70.0, 50.0]])]))
    assert torch.isfinite(out.deltas).all()


# ----------------------------------------------------------------- loud failures

def _with_test_pipeline(model: torch.nn.Module, pipeline: list[dict]) -> torch.nn.Module:
    model = copy.copy(model)  # shares the weights; its own config
    model.cfg = copy.deepcopy(model.cfg)
    model.cfg.test_dataloader.dataset.pipeline = pipeline
    return model


LOAD, PACK = dict(type="LoadImageFromFile"), dict(type="PackDetInputs")


@pytest.mark.parametrize("resize, match", [
    (dict(type="Resize", scale_factor=2.0, keep_ratio=True), "cannot read"),
    (dict(type="Resize", scale=(128, 128), keep_ratio=True, antialias=True), "unknown keys"),
    (dict(type="RandomResize", scale=(128, 128), keep_ratio=True), "RandomResize"),
])
def test_unreadable_test_resize_raises_at_construction(random_detector, resize, match):
    with pytest.raises(UnsupportedDetectorError, match=match):
        MMDetTwoStageAdapter(_with_test_pipeline(random_detector, [LOAD, resize, PACK]))


def test_pipeline_without_resize_keeps_the_image_size(random_detector):
    adapter = MMDetTwoStageAdapter(_with_test_pipeline(random_detector, [LOAD, PACK]))
    assert adapter.input_scale(50, 70) == (1.0, 1.0)


def test_model_without_config_raises_at_construction(random_detector):
    model = copy.copy(random_detector)
    model.cfg = None
    with pytest.raises(UnsupportedDetectorError, match="no config"):
        MMDetTwoStageAdapter(model)


def test_preprocessor_without_what_is_read_raises_at_construction(random_detector):
    from mmengine.model import BaseDataPreprocessor

    model = copy.copy(random_detector)
    model._modules = dict(model._modules, data_preprocessor=BaseDataPreprocessor())
    with pytest.raises(UnsupportedDetectorError, match="BaseDataPreprocessor.*_channel_conversion"):
        MMDetTwoStageAdapter(model)
