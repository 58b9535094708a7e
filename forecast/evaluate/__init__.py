"""Evaluation: WeatherBench2 metrics over xarray, regions, climatology and scorecards (no torch here)."""
