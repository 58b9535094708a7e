"""The evaluation stage: WeatherBench2 scores of forecast products against a truth store, with baselines.

``metrics`` (pure functions over xarray) <- ``align`` (forecast vs truth on valid time), ``climatology``
(day-of-year x hour), ``regions`` (masks) <- ``score`` (one lazy pass with dask, tidy output).
Only xarray/numpy/dask here: evaluation never imports model code.
"""
