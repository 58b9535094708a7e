# The pipeline on the embedded default data: an ERA5-style archive the package generates itself.
#   make data      forecast synth  -> $(SYNTH_DIR) (CDS layout, monthly netCDF)
#   make ingest    forecast ingest -> $(STORE) (training-ready zarr)
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
