"""Ingestion: read ERA5-style files, normalise conventions, regrid, validate and write training stores."""
