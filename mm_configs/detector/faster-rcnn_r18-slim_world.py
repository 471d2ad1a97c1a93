# The bundled detector's recipe on another synthetic world (`bbam-captum synth --world NAME`).
# It starts from the bundled detector's weights, as a user starts from pretrained weights,
# and trains a quarter of the from-scratch schedule. `make detector WORLD=NAME` draws
# data/worlds/NAME/{train,val} and runs this config with the dataset paths of that world
# (`--cfg-options`, see the Makefile).
_base_ = ['./faster-rcnn_r18-slim_synth.py']

load_from = 'bbam_captum/assets/detector/checkpoint.pth'

max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[2400, 2800], gamma=0.1),
]
