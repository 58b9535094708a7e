# The pipeline on real ERA5 (CDS netCDF, 2.5 deg, 6-hourly): ../shared/era5 or your own download.
#   make era5                       ingest with configs/ingest/era5.yaml
#   make era5 ERA5=/data/my-cds     the same chain on your files (same file-name patterns)
# Included by the top-level Makefile; variables STAMP, FORECAST and DATA come from there.

ERA5 ?= ../shared/era5
ERA5_CONFIG ?= configs/ingest/era5.yaml
ERA5_STORE := $(DATA)/stores/era5-2.5deg.zarr
ERA5_SOURCES := $(wildcard $(ERA5)/era5_msl_*.nc $(ERA5)/era5_vo850_*.nc)
ERA5_CONSTANTS := $(ERA5)/samples/constants_5.625deg.nc

.PHONY: era5 era5-ingest

era5: era5-ingest
era5-ingest: $(ERA5_STORE)/zarr.json

$(ERA5_STORE)/zarr.json: $(STAMP) $(ERA5_CONFIG) $(ERA5_SOURCES)
	$(FORECAST) ingest $(ERA5_CONFIG) --output $(ERA5_STORE) \
		--set 'sources.0.paths=[$(ERA5)/era5_msl_*.nc, $(ERA5)/era5_vo850_*.nc]' \
		--set 'static.0.source.paths=[$(ERA5_CONSTANTS)]' --set 'static.1.source.paths=[$(ERA5_CONSTANTS)]'

# Issue-3 protocol on real ERA5: SFNO and AFNO, each trained on the 1-step loss then fine-tuned on
# a 4-step loss; SFNO gets a third stage on an 8-step (2-day) loss, which lowers its 3-5 day error.
# Each model is scored against persistence and climatology on the validation period.
ERA5_RUNS := runs
ERA5_SKILL := $(ERA5_RUNS)/era5-skill
ERA5_VALID := --start 2026-01-25T00:00 --end 2026-02-07T18:00 --clim-end 2026-01-24T18:00 --cases 32 \
	--leads 1 4 8 12 20
ERA5_TRAIN = $(FORECAST) train $< --resume --set data.store=$(ERA5_STORE) --set output_dir=$(ERA5_RUNS)/{name}

.PHONY: era5-train era5-skill

era5-train: $(ERA5_RUNS)/sfno-era5-ft8/model.pt $(ERA5_RUNS)/afno-era5-ft/model.pt

$(ERA5_RUNS)/%-era5/model.pt: configs/train/%_era5.yaml $(ERA5_STORE)/zarr.json
	$(ERA5_TRAIN)

$(ERA5_RUNS)/%-era5-ft/model.pt: configs/train/%_era5_ft.yaml $(ERA5_RUNS)/%-era5/model.pt
	$(ERA5_TRAIN) --set init_from=$(ERA5_RUNS)/$*-era5/best.pt

$(ERA5_RUNS)/%-era5-ft8/model.pt: configs/train/%_era5_ft8.yaml $(ERA5_RUNS)/%-era5-ft/model.pt
	$(ERA5_TRAIN) --set init_from=$(ERA5_RUNS)/$*-era5-ft/best.pt

era5-skill: $(ERA5_SKILL)/sfno.csv $(ERA5_SKILL)/afno.csv

$(ERA5_SKILL)/sfno.csv: $(ERA5_RUNS)/sfno-era5-ft8/model.pt
$(ERA5_SKILL)/afno.csv: $(ERA5_RUNS)/afno-era5-ft/model.pt
$(ERA5_SKILL)/%.csv:
	mkdir -p $(ERA5_SKILL)
	$(FORECAST) skill $(<D)/best.pt --store $(ERA5_STORE) $(ERA5_VALID) --out $@
