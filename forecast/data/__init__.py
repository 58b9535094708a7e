"""From a training store to batches: windows over time, normalisation, forcings (the xarray -> torch boundary)."""
