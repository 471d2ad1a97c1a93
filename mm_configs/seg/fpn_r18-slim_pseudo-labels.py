# Semantic segmentation trained on pseudo labels: Semantic FPN (an FCN over FPN levels) on a
# half-width ResNet-18 and a 64-channel FPN, the bundled detector's backbone and neck, so a
# detector's weights can initialise it (benchmarks.pipeline does). Trains from scratch on CPU
# as shipped. `bbam-captum generate` writes OUT/mmseg/config.py, which inherits this file and
# fills in the data paths:
#   mim train mmseg OUT/mmseg/config.py
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
]

# mmengine's own checkpoints (load_from, resume) under torch's weights-only loading
custom_imports = dict(imports=['bbam_captum.mmlab'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a distributed GPU run
crop_size = (192, 192)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(type='ResNet', depth=18, stem_channels=32, base_channels=32, deep_stem=False,
                  norm_cfg=norm_cfg),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=64, norm_cfg=norm_cfg, num_classes=8))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='BaseSegDataset', reduce_zero_label=False, pipeline=train_pipeline))
# Training only; benchmarks.pipeline adds a validation split with true masks.
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None

max_iters = 2000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
                     clip_grad=dict(max_norm=10))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
