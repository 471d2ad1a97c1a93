# The two commands of the README are `make demo` and `make test`; each sets up .venv/ first.
PY := .venv/bin/python
MIM := .venv/bin/mim
DETECTOR_CONFIG := mm_configs/detector/faster-rcnn_r18-slim_synth.py
DETECTOR_WORK_DIR := work_dirs/detector
DETECTOR_ASSET := bbam_captum/assets/detector

# WORLD=shapes (default) reproduces the bundled detector; another world (camouflage, photo)
# fine-tunes it on that world's data into bbam_captum/assets/worlds/$(WORLD)/.
WORLD := shapes
WORLD_DATA := data/worlds/$(WORLD)
WORLD_CONFIG := mm_configs/detector/faster-rcnn_r18-slim_world.py
WORLD_PATHS := train_dataloader.dataset.data_root=$(WORLD_DATA)/ val_dataloader.dataset.data_root=$(WORLD_DATA)/ \
	test_dataloader.dataset.data_root=$(WORLD_DATA)/ val_evaluator.ann_file=$(WORLD_DATA)/val/annotations.json \
	test_evaluator.ann_file=$(WORLD_DATA)/val/annotations.json

.PHONY: setup demo test detector detector-data world-data

setup:
	@bash scripts/setup_env.sh

test: setup
	@# Debian's Chromium for the review page's browser test; without it that test skips and says why
	-@bash scripts/install_browser.sh
	@echo "[test] running the test suite"
	$(PY) -m pytest -q tests

demo: setup
	@$(PY) -m bbam_captum.demo --out outputs/demo

# Reproduces the bundled detector from scratch (about an hour on 2 CPU cores).
detector-data: setup
	@test -f data/synth/train/annotations.json || .venv/bin/bbam-captum synth data/synth/train --num-images 4000 --seed 0
	@test -f data/synth/val/annotations.json || .venv/bin/bbam-captum synth data/synth/val --num-images 300 --seed 1

world-data: setup
	@test -f $(WORLD_DATA)/train/annotations.json || .venv/bin/bbam-captum synth $(WORLD_DATA)/train --world $(WORLD) --num-images 2000 --seed 0
	@test -f $(WORLD_DATA)/val/annotations.json || .venv/bin/bbam-captum synth $(WORLD_DATA)/val --world $(WORLD) --num-images 300 --seed 1

ifeq ($(WORLD),shapes)
detector: detector-data
	$(MIM) train mmdet $(DETECTOR_CONFIG) --work-dir $(DETECTOR_WORK_DIR) --resume
	$(PY) -m bbam_captum.export_detector --work-dir $(DETECTOR_WORK_DIR) --out $(DETECTOR_ASSET) --val-ann data/synth/val/annotations.json
else
# --resume only once a checkpoint exists: mmdet's --resume drops load_from, the starting weights.
detector: world-data
	$(MIM) train mmdet $(WORLD_CONFIG) --work-dir work_dirs/detector-$(WORLD) \
		$(if $(wildcard work_dirs/detector-$(WORLD)/last_checkpoint),--resume) --cfg-options $(WORLD_PATHS)
	$(PY) -m bbam_captum.export_detector --work-dir work_dirs/detector-$(WORLD) --out bbam_captum/assets/worlds/$(WORLD) --val-ann $(WORLD_DATA)/val/annotations.json
endif
