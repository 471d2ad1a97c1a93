# Instance segmentation trained on pseudo masks: a slim Mask R-CNN (the bundled
# detector's backbone, FPN and box head, plus a light mask head), from scratch on CPU.
# `bbam-captum generate` writes OUT/coco/config.py, which inherits this file:
#   mim train mmdet OUT/coco/config.py
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]

# mmengine's own checkpoints (load_from, resume) under torch's weights-only loading, and the
# components that train with each pseudo mask's ignore band (bbam_captum/mmlab/band.py)
custom_imports = dict(imports=['bbam_captum.mmlab'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(depth=18, base_channels=32, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64,
                  anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64, finest_scale=28),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=7),
        mask_roi_extractor=dict(out_channels=64, finest_scale=28),
        # no loss on the band between the pseudo mask and the wider mask (the original BBAM's loss)
        mask_head=dict(type='BandMaskHead', num_convs=2, in_channels=64, conv_out_channels=64, num_classes=7)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBandAnnotations', with_bbox=True, with_mask=True),  # masks with their bands
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(192, 192), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CocoBandDataset', filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
# Training only; benchmarks.pipeline adds a validation split with true masks.
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None

max_iters = 3000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=300),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[2400], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
