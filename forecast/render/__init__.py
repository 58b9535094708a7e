"""Figures of the evaluation stage: cartopy maps, score plots, scorecards, animations and a report page.

Rendering draws what :mod:`forecast.evaluate` computed (and fields read from products and stores);
it imports xarray, matplotlib and cartopy, never model code. Maps draw coastlines offline from the
Natural Earth files shipped in the package (:func:`forecast.naturalearth.use_offline_cartopy`).
"""
