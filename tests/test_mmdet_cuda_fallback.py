"""MMDetection detectors on CUDA with an mmcv built without CUDA ops: RoIAlign through torchvision."""
from __future__ import annotations

import pytest
import torch

from bbam_captum import load_detector
from bbam_captum.detectors import MMDetTwoStageAdapter, UnsupportedDetectorError
from bbam_captum.detectors.mmdet_two_stage import torchvision_roi_align
from bbam_captum.synth import draw_image


def test_torchvision_roi_align_gives_mmcvs_head_outputs_and_restores_the_layers():
    model = load_detector()
    adapter = MMDetTwoStageAdapter(model)
    rgb, objects = draw_image(1, 3)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    rois = torch.tensor([[0.0, *o.bbox_xyxy] for o in objects])
    layers = [m for m in model.roi_head.bbox_roi_extractor.roi_layers]
    assert layers and not any(m.use_torchvision for m in layers)
    with torch.no_grad(), adapter.frozen():
        features = adapter.features(image)
        own = adapter.roi_outputs(features, rois)
        with torchvision_roi_align(model):
            assert all(m.use_torchvision for m in layers)
            swapped = adapter.roi_outputs(features, rois)
    assert not any(m.use_torchvision for m in layers)  # as the user's model was
    assert torch.allclose(own.probs, swapped.probs, atol=1e-5)
    assert torch.allclose(own.deltas, swapped.deltas, atol=1e-4)


def test_other_mmcv_ops_are_refused_with_what_to_install():
    from mmcv.ops import DeformConv2d

    model = load_detector()
    model.backbone.extra = DeformConv2d(4, 4, 3)  # an op torchvision cannot stand in for
    with pytest.raises(UnsupportedDetectorError, match="DeformConv2d.*mim install mmcv"):
        with torchvision_roi_align(model):
            pass
    assert not any(m.use_torchvision for m in model.roi_head.bbox_roi_extractor.roi_layers)
