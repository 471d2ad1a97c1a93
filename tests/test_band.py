"""Instance training with each pseudo mask's ignore band (``bbam_captum.mmlab.band``)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bbam_captum.io.coco import decode_mask, encode_mask

mmlab = pytest.importorskip("bbam_captum.mmlab")
from mmdet.models.losses import mask_cross_entropy  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

SIZE = 28  # the mask head's target size: a RoI that is the whole image maps pixels one to one


def _masks_and_band(n: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    band = np.zeros_like(masks)
    for k in range(n):
        x, y = rng.integers(2, 10, 2)
        masks[k, y:y + 10, x:x + 8] = 1
        band[k, y + 10:y + 14, x:x + 12] = 1  # below and right of the mask, disjoint from it
    return masks, band


def test_band_pixels_get_no_gradient_and_the_rest_does():
    masks, band = _masks_and_band()
    logits = torch.randn(2, SIZE, SIZE, requires_grad=True)
    mmlab.band_mask_loss(logits, torch.from_numpy(masks).float(), torch.from_numpy(band).float()).backward()
    grad = logits.grad.abs()
    assert grad[torch.from_numpy(band).bool()].max() == 0
    assert (grad[~torch.from_numpy(band).bool()] > 0).all()


def test_without_band_the_loss_is_mmdetections():
    masks, _ = _masks_and_band()
    logits = torch.randn(2, 3, SIZE, SIZE)
    labels = torch.tensor([2, 0])
    stock = mask_cross_entropy(logits, torch.from_numpy(masks).float(), labels)
    ours = mmlab.band_mask_loss(logits[torch.arange(2), labels], torch.from_numpy(masks).float(),
                                torch.zeros(2, SIZE, SIZE))
    assert ours.item() == pytest.approx(stock.item(), rel=1e-6)


def test_seed_growing_trains_confident_band_pixels_as_foreground():
    masks, band = _masks_and_band(1)
    band_t = torch.from_numpy(band).float()
    logits = torch.where(band_t.bool(), torch.tensor(5.0), torch.tensor(-5.0)).requires_grad_(True)  # band: p 0.99
    mmlab.band_mask_loss(logits, torch.from_numpy(masks).float(), band_t, seed_threshold=0.9).backward()
    assert (logits.grad[band_t.bool()] < 0).all()  # pushed up: trained as foreground
    logits.grad = None
    mmlab.band_mask_loss(logits, torch.from_numpy(masks).float(), band_t, seed_threshold=None).backward()
    assert logits.grad[band_t.bool()].abs().max() == 0


def test_mask_head_loss_ignores_the_band_of_banded_masks():
    from mmdet.registry import MODELS

    masks, band = _masks_and_band()
    head = MODELS.build(dict(type="BandMaskHead", num_convs=1, in_channels=4, conv_out_channels=4, num_classes=3))
    preds = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    whole = torch.tensor([[0.0, 0.0, SIZE, SIZE]] * 2)
    sampling = [SimpleNamespace(pos_priors=whole, pos_assigned_gt_inds=torch.tensor([0, 1]),
                                pos_gt_labels=torch.tensor([1, 2]))]
    gt = [InstanceData(masks=mmlab.BandedBitmapMasks(masks, band, SIZE, SIZE))]
    out = head.loss_and_target(preds, sampling, gt, ConfigDict(mask_size=SIZE))
    out["loss_mask"]["loss_mask"].backward()
    grad = preds.grad.abs()
    for k, label in enumerate((1, 2)):
        assert grad[k, label][torch.from_numpy(band[k]).bool()].max() == 0
        assert grad[k, label][~torch.from_numpy(band[k]).bool()].min() > 0
    # plain masks (no band): every pixel trains, as MMDetection's FCNMaskHead
    preds.grad = None
    gt = [InstanceData(masks=BitmapMasks(masks, SIZE, SIZE))]
    head.loss_and_target(preds, sampling, gt, ConfigDict(mask_size=SIZE))["loss_mask"]["loss_mask"].backward()
    assert preds.grad[0, 1].abs().min() > 0


def test_band_follows_the_masks_through_geometric_transforms():
    masks, band = _masks_and_band(3)
    banded = mmlab.BandedBitmapMasks(masks, band, SIZE, SIZE)
    for moved in (banded.flip("horizontal"), banded.resize((40, 36)), banded.crop(np.array([3, 4, 20, 25])),
                  banded.rotate((SIZE, SIZE), 30), banded[[2, 0]], mmlab.BandedBitmapMasks.cat([banded, banded])):
        assert isinstance(moved, mmlab.BandedBitmapMasks)
        assert moved.band.shape == moved.masks.shape
    flipped = banded.flip("horizontal")
    assert np.array_equal(flipped.band, band[:, :, ::-1]) and np.array_equal(flipped.masks, masks[:, :, ::-1])
    assert np.array_equal(banded[[2, 0]].band, band[[2, 0]])
    with pytest.raises(ValueError, match="band of shape"):
        mmlab.BandedBitmapMasks(masks, band[:2], SIZE, SIZE)


def test_dataset_and_loader_bring_the_band_from_the_coco_file_to_the_model_input(tmp_path):
    from PIL import Image

    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    masks, band = _masks_and_band(2)
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "a.png")
    anns = [{"id": 10 + k, "image_id": 1, "category_id": 1, "bbox": [0, 0, SIZE, SIZE], "area": int(masks[k].sum()),
             "iscrowd": 0, "segmentation": encode_mask(masks[k].astype(bool)),
             "ignore_segmentation": encode_mask(band[k].astype(bool))} for k in range(2)]
    anns.insert(1, {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0,
                    "segmentation": encode_mask(np.zeros((SIZE, SIZE), bool))})  # skipped by CocoDataset
    (tmp_path / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE}], "annotations": anns,
        "categories": [{"id": 1, "name": "thing"}]}))
    with DefaultScope.overwrite_default_scope("mmdet"):  # the pipeline's transforms are looked up in mmdet's scope
        dataset = DATASETS.build(dict(
            type="CocoBandDataset", data_root="", ann_file=str(tmp_path / "ann.json"),
            data_prefix=dict(img=str(tmp_path) + "/"), metainfo=dict(classes=("thing",)), filter_cfg=None,
            pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadBandAnnotations", with_bbox=True, with_mask=True),
                      dict(type="RandomFlip", prob=1.0), dict(type="PackDetInputs")]))
        sample: DetDataSample = dataset[0]["data_samples"]
    got = sample.gt_instances.masks
    assert isinstance(got, mmlab.BandedBitmapMasks) and len(got) == 2
    assert np.array_equal(got.masks, masks[:, :, ::-1]) and np.array_equal(got.band, band[:, :, ::-1])


def test_written_coco_labels_carry_disjoint_bands_and_the_config_trains_with_them(tmp_path, tiny_synth):
    from mmengine.config import Config

    from bbam_captum.cli.main import main

    out = tmp_path / "out"
    assert main(["generate", "--ann", str(tiny_synth / "annotations.json"), "--img-dir", str(tiny_synth / "images"),
                 "--out", str(out), "--steps", "4"]) in (0, None)
    anns = json.loads((out / "coco" / "instances.json").read_text())["annotations"]
    bands = [decode_mask(a["ignore_segmentation"], 96, 96) for a in anns]
    assert sum(b.sum() for b in bands) > 0  # the CRF's two shares leave a band
    for ann, band in zip(anns, bands):
        assert not (band & decode_mask(ann["segmentation"], 96, 96)).any()
    cfg = Config.fromfile(out / "coco" / "config.py", import_custom_modules=False)
    assert cfg.model.roi_head.mask_head.type == "BandMaskHead"
    assert cfg.train_dataloader.dataset.type == "CocoBandDataset"
    assert [t["type"] for t in cfg.train_dataloader.dataset.pipeline][1] == "LoadBandAnnotations"
    assert "bbam_captum.mmlab" in cfg.custom_imports["imports"]
