# The pipeline on the embedded default data: an ERA5-style archive the package generates itself.
#   make data      forecast synth  -> $(SYNTH_DIR) (CDS layout, monthly netCDF)
#   make ingest    forecast ingest -> $(STORE) (training-ready zarr)
#   make predict   forecast predict -> $(RUN)/forecasts/deterministic.zarr (10-day forecasts from 36 days)
#   make ensemble  forecast predict -> $(RUN)/forecasts/ensemble.zarr (8-member 5-day ensembles from 20 days)
#   make climatology / evaluate / render / report: scores, figures and a report page of both products
# Included by the top-level Makefile; variables STAMP, FORECAST and DATA come from there.

SYNTH_CONFIG ?= configs/synth/default.yaml
CONFIG ?= configs/ingest/synthetic.yaml
SYNTH_DIR := $(DATA)/raw/era5-synth
SYNTH_MANIFEST := $(SYNTH_DIR)/MANIFEST.json
STORE := $(DATA)/stores/era5-synth.zarr

.PHONY: data ingest

data: $(SYNTH_MANIFEST)

$(SYNTH_MANIFEST): $(STAMP) $(SYNTH_CONFIG)
	$(FORECAST) synth --config $(SYNTH_CONFIG) --out $(SYNTH_DIR)

ingest: $(STORE)/zarr.json

$(STORE)/zarr.json: $(STAMP) $(SYNTH_MANIFEST) $(CONFIG)
	$(FORECAST) ingest $(CONFIG) --output $(STORE) \
		--set 'sources.0.paths=[$(SYNTH_DIR)/pressure_levels/*.nc, $(SYNTH_DIR)/single_levels/*.nc]' \
		--set 'static.0.source.paths=[$(SYNTH_DIR)/invariant/*.nc]' \
		--set 'static.1.source.paths=[$(SYNTH_DIR)/invariant/*.nc]'

# Train on the embedded store, then score against persistence and climatology on the second year.
TRAIN_CONFIG ?= configs/train/sfno_synth.yaml
RUN := runs/$(basename $(notdir $(TRAIN_CONFIG)))
SYNTH_VALID := --start 2001-01-01T00:00 --end 2001-12-31T18:00 --clim-end 2000-12-31T18:00 --cases 32 \
	--leads 1 4 8 12 20

.PHONY: train skill

train: $(RUN)/model.pt

$(RUN)/model.pt: $(STAMP) $(STORE)/zarr.json $(TRAIN_CONFIG)
	$(FORECAST) train $(TRAIN_CONFIG) --resume --set data.store=$(STORE) --set output_dir=$(RUN)

skill: $(RUN)/skill.csv

$(RUN)/skill.csv: $(RUN)/model.pt
	$(FORECAST) skill $(RUN)/best.pt --store $(STORE) $(SYNTH_VALID) --out $@

# Forecast products of the trained model: configs/predict/<name>.yaml -> $(RUN)/forecasts/<name>.zarr.
# A product is done when its COMPLETE marker exists (written last, before the atomic rename), so a second
# `make predict` does nothing and a run stopped by a guard (complete: false) is redone. --overwrite lets a
# stale or incomplete product be replaced: make has decided it must be rebuilt.
FORECASTS := $(RUN)/forecasts

.PHONY: predict ensemble

predict: $(FORECASTS)/deterministic.zarr/COMPLETE
ensemble: $(FORECASTS)/ensemble.zarr/COMPLETE

$(FORECASTS)/%.zarr/COMPLETE: configs/predict/%.yaml $(RUN)/model.pt $(STORE)/zarr.json
	$(FORECAST) predict $< --overwrite --no-progress --set 'packages=[$(RUN)/best.pt]' --set store=$(STORE) \
		--set output.path=$(FORECASTS)/$*.zarr

# Evaluation of both products against the store, with persistence and climatology on the same cases
# (configs/evaluate/synthetic.yaml). Each step depends on its files: scores.nc is written after scores.csv,
# figures/index.json after every figure, so a second `make report` does nothing.
EVAL_CONFIG ?= configs/evaluate/synthetic.yaml
CLIM := $(DATA)/stores/era5-synth-climatology.zarr
EVALUATION := $(RUN)/evaluation
PRODUCTS := deterministic ensemble

.PHONY: climatology evaluate render report

climatology: $(CLIM)/zarr.json
evaluate: $(PRODUCTS:%=$(EVALUATION)/%/scores.nc)
render: $(PRODUCTS:%=$(EVALUATION)/%/figures/index.json)
report: $(PRODUCTS:%=$(EVALUATION)/%/report.html)

$(CLIM)/zarr.json: $(EVAL_CONFIG) $(STORE)/zarr.json
	$(FORECAST) climatology $(STORE) --config $(EVAL_CONFIG) --out $(CLIM) --no-progress

$(EVALUATION)/%/scores.nc: $(FORECASTS)/%.zarr/COMPLETE $(CLIM)/zarr.json $(EVAL_CONFIG)
	$(FORECAST) evaluate $(FORECASTS)/$*.zarr --truth $(STORE) --climatology $(CLIM) --config $(EVAL_CONFIG) \
		--out $(EVALUATION)/$* --no-progress

$(EVALUATION)/%/figures/index.json: $(EVALUATION)/%/scores.nc $(EVAL_CONFIG)
	$(FORECAST) render $(EVALUATION)/$* --config $(EVAL_CONFIG) --no-progress

$(EVALUATION)/%/report.html: $(EVALUATION)/%/figures/index.json
	$(FORECAST) report $(EVALUATION)/$*

# Model against model (issue 12): the AFNO (configs/train/afno_synth.yaml, trained by the pattern rule in
# pipelines/climate.mk with the SFNO's data and budget) forecasts the same 36 cases as the SFNO's
# deterministic product, is scored the same way, and `forecast compare` draws the scorecards of the SFNO
# against it (reference) per region, with paired significance, into $(COMPARISON).
#   make compare   (trains the AFNO first if runs/afno_synth/model.pt is missing: about 2 min on 2 cores)
COMPARE_REFERENCE ?= afno_synth
COMPARE_RUN := runs/$(COMPARE_REFERENCE)
COMPARISON := $(EVALUATION)/compare-$(COMPARE_REFERENCE)

.PHONY: compare

compare: $(COMPARISON)/comparison.nc

$(COMPARE_RUN)/forecasts/deterministic.zarr/COMPLETE: configs/predict/deterministic.yaml $(COMPARE_RUN)/model.pt \
		$(STORE)/zarr.json
	$(FORECAST) predict $< --overwrite --no-progress --set 'packages=[$(COMPARE_RUN)/best.pt]' --set store=$(STORE) \
		--set name=$(subst _,-,$(COMPARE_REFERENCE))-deterministic --set output.path=$(@D)

$(COMPARE_RUN)/evaluation/deterministic/scores.nc: $(COMPARE_RUN)/forecasts/deterministic.zarr/COMPLETE $(CLIM)/zarr.json \
		$(EVAL_CONFIG)
	$(FORECAST) evaluate $(<D) --truth $(STORE) --climatology $(CLIM) --config $(EVAL_CONFIG) --out $(@D) --no-progress

$(COMPARISON)/comparison.nc: $(EVALUATION)/deterministic/scores.nc $(COMPARE_RUN)/evaluation/deterministic/scores.nc
	$(FORECAST) compare $^ --reference $(subst _,-,$(COMPARE_REFERENCE))-deterministic --out $(@D)
