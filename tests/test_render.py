"""Rendering: maps really drawn (offline coastlines, pixels that depend on the field), score plots, the
scorecard's relative skill by hand, the rollout GIF, and `forecast render` / `forecast report` end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from PIL import Image

from forecast.cli import main
from forecast.evaluate.align import open_forecast, open_truth
from forecast.evaluate.config import EvaluateConfig
from forecast.evaluate.score import run_evaluate
from forecast.naturalearth import use_offline_cartopy
from forecast.render import plots
from forecast.render.animate import animate_rollout
from forecast.render.figure import save_figure
from forecast.render.lead_plots import lead_chart, lead_chart_data
from forecast.render.maps import Panel, map_figure
from forecast.render.styles import lead_style, style_for
from forecast.testing import evaluation_store, noisy_product

INITS = np.array(["2000-02-01T00", "2000-02-02T00"], dtype="datetime64[ns]")


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.verify()  # a complete, well-formed image file
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def field(values: np.ndarray) -> xr.DataArray:
    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    return xr.DataArray(values, dims=["latitude", "longitude"], coords={"latitude": lat, "longitude": lon})


def fake_scores(leads: int = 4, members: int = 5) -> xr.Dataset:
    """A scores dataset as `forecast evaluate` writes it: forecast RMSE 1, persistence 2; ACC 0.8 vs 0.4."""
    coords = {"metric": ["rmse", "acc", "crps", "spread", "spread_skill"], "region": ["global", "land"],
              "variable": ["z500", "msl"], "lead_time": np.arange(1, leads + 1) * np.timedelta64(6, "h")}
    shape = tuple(len(v) for v in coords.values())
    values = {"rmse": (1.0, 2.0, 1.5), "acc": (0.8, 0.4, np.nan), "crps": (0.5, 1.0, 0.75), "spread": (0.9, np.nan,
                                                                                                        np.nan),
              "spread_skill": (0.9, np.nan, np.nan)}
    ds = xr.Dataset(coords=coords)
    for k, name in enumerate(["sfno", "persistence", "climatology"]):
        arr = np.empty(shape)
        for i, m in enumerate(coords["metric"]):
            arr[i] = values[m][k]
        ds[name] = (("metric", "region", "variable", "lead_time"), arr)
    ds["rank_histogram"] = (("region", "variable", "lead_time", "rank"),
                            np.full((2, 2, leads, members + 1), 1.0 / (members + 1)))
    k = np.arange(19)
    spec = np.broadcast_to(1.0 / (1.0 + k) ** 3, (2, leads, 19))
    ds["spectrum_forecast"] = (("variable", "lead_time", "zonal_wavenumber"), spec * 0.8)
    ds["spectrum_truth"] = (("variable", "lead_time", "zonal_wavenumber"), spec)
    ds = ds.assign_coords(units=("variable", ["m**2 s**-2", "Pa"]), zonal_wavenumber=k, rank=np.arange(members + 1))
    ds.attrs = {"forecast": "sfno", "members": members}
    return ds


def test_map_is_a_valid_image_whose_pixels_depend_on_the_field(tmp_path):
    lon = np.deg2rad(np.arange(36) * 10.0)
    a = field(54000 + 3000 * np.cos(np.deg2rad(np.linspace(90, -90, 19)))[:, None] * np.cos(2 * lon)[None, :])
    b = field(54000 - 3000 * np.sin(np.deg2rad(np.linspace(90, -90, 19)))[:, None] * np.ones((1, 36)))
    style = style_for("z500", "m**2 s**-2")
    paths = []
    for name, f in (("a", a), ("a_again", a), ("b", b)):
        fig = map_figure([Panel(f, "forecast"), Panel(a, "truth"), Panel(f - a, "error", "error")], style, "robinson",
                         gridlines=False)  # labelled gridlines are drawn by the render test below; they are slow
        paths.append(save_figure(fig, tmp_path / f"{name}.png", dpi=60))
    pa, pa2, pb = (pixels(p) for p in paths)
    assert pa.shape == pb.shape and pa.shape[0] > 100 and pa.shape[1] > 300
    assert np.array_equal(pa, pa2)  # drawing is deterministic ...
    differ = np.abs(pa - pb).sum(axis=-1) > 30
    assert differ.mean() > 0.05  # ... and another field gives another picture
    for view in ("north_polar", "south_polar", "orthographic"):
        polar = save_figure(map_figure([Panel(b, "b")], style, view, gridlines=False), tmp_path / f"{view}.png", dpi=50)
        assert len(np.unique(pixels(polar).reshape(-1, 3), axis=0)) > 20


def test_coastlines_come_from_the_shipped_files_and_nothing_is_downloaded():
    import cartopy.feature as cfeature

    use_offline_cartopy()
    coast = list(cfeature.NaturalEarthFeature("physical", "coastline", "110m").geometries())
    assert len(coast) > 100
    with pytest.raises(RuntimeError, match="offline"):
        list(cfeature.NaturalEarthFeature("physical", "coastline", "10m").geometries())


def test_styles_are_fixed_per_variable_and_fall_back_to_the_data():
    z = style_for("z500", "m**2 s**-2", np.array([0.0, 1.0]))
    assert (z.vmin, z.vmax, z.fixed) == (47000.0, 59000.0, True)
    assert style_for("vo850", "s**-1").label == "relative vorticity at 850 hPa"
    odd = style_for("mystery", "1", np.linspace(0, 100, 101))
    assert not odd.fixed and odd.vmin == pytest.approx(1.0) and odd.vmax == pytest.approx(99.0)
    assert style_for("z500", "m**2 s**-2", ranges={"z500": (1.0, 2.0)}, error_ranges={"z500": 5.0}).error == 5.0


def test_relative_skill_by_hand_and_score_plots(tmp_path):
    s = fake_scores()
    table = plots.relative_skill(s, "persistence")
    np.testing.assert_allclose(table.loc["RMSE z500"], 50.0)  # (2 - 1) / 2
    np.testing.assert_allclose(table.loc["ACC msl"], 40.0)  # 0.8 - 0.4, in points
    assert "ACC z500" not in plots.relative_skill(s, "climatology").index  # undefined for the climatology
    figures = {
        "rmse": plots.metric_vs_lead(s, "rmse"),
        "scorecard": plots.scorecard(s, "persistence", "land"),
        "spread": plots.spread_skill_plot(s),
        "rank": plots.rank_histogram_plot(s),
        "spectra": plots.spectra_plot(s, ["6h", "24h"]),
    }
    sizes = {k: pixels(save_figure(f, tmp_path / f"{k}.png", dpi=50)).shape for k, f in figures.items()}
    assert all(h > 50 and w > 50 for h, w, _ in sizes.values())
    with pytest.raises(ValueError, match="baseline 'nope'"):
        plots.relative_skill(s, "nope")


def test_rollout_animation_is_a_gif_with_one_frame_per_lead(tmp_path):
    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    leads = np.arange(1, 5) * np.timedelta64(6, "h")
    values = 54000 + 3000 * np.cos(np.deg2rad(lon)[None, None, :] - 0.8 * np.arange(4)[:, None, None]) * np.ones(
        (1, 19, 1))
    da = xr.DataArray(values, dims=["lead_time", "latitude", "longitude"], name="z500",
                      coords={"lead_time": leads, "latitude": lat, "longitude": lon})
    path = animate_rollout(da, style_for("z500", "m**2 s**-2"), tmp_path / "roll.gif", max_frames=10, dpi=40)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB"), dtype=np.int16))
    assert np.abs(frames[0] - frames[-1]).sum() > 0


def test_render_and_report_of_an_evaluation_through_the_cli(tmp_path):
    store = evaluation_store(tmp_path)
    product = noisy_product(store, tmp_path / "ens.zarr", INITS, 4, members=3, noise=0.05)
    cfg = {"regions": ["global", "sea"], "render": {"variables": ["z500"], "map_leads": ["1d"],
                                                    "projections": ["north_polar"], "dpi": 40,
                                                    "animation": {"variable": "msl", "max_frames": 2},
                                                    "skill_map_leads": ["1d"],
                                                    "interactive": {"lead_every": "12h", "members": 1, "dpi": 30}}}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    run_evaluate(EvaluateConfig.model_validate(cfg), product, store, run, progress=False)
    assert main(["render", str(run), "--config", str(tmp_path / "eval.yaml"), "--no-progress"]) == 0
    index = json.loads((run / "figures" / "index.json").read_text())
    kinds = {f["kind"] for f in index["figures"]}
    assert kinds == {"lead", "scorecard", "spread_skill", "rank_histogram", "spectra", "map", "skill_map", "frame",
                     "animation"}
    frames = [f for f in index["figures"] if f["kind"] == "frame"]  # z500 at 12 h and 24 h: mean, truth, member 0
    assert sorted({(f["lead_hours"], f["member"]) for f in frames}) == [
        (h, m) for h in (12.0, 24.0) for m in ("ensemble mean", "member 0", "truth")]
    for f in index["figures"]:
        assert (run / "figures" / f["path"]).stat().st_size > 1000
    # The ensemble map shows mean, truth, error of the mean and spread of this product at +24 h.
    fc = open_forecast(product)["z500"].isel(init_time=0).sel(lead_time=np.timedelta64(24, "h")).load()
    assert fc.sizes["member"] == 3 and open_truth(store)["z500"].sizes["time"] > 0
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    charted = [f for f in index["figures"] if f["kind"] in ("lead", "spread_skill")]  # drawn by the page's charts
    assert "src='figures/" not in html and "id='lead-plots'" in html and "const LEAD_DATA = {" in html
    assert html.count("data:image/png;base64,") == len(index["figures"]) - len(charted) - 1  # and one GIF
    assert "data:image/gif;base64," in html and "id='explorer'" in html and "<nav>" in html
    assert not re.search(r"(src|href)=['\"]https?:", html)  # nothing fetched from the network
    md = (run / "report.md").read_text()
    assert "| rmse | z500 | m² s⁻² | noisy-truth |" in md and "Relative skill vs persistence" in md
    assert main(["report", str(tmp_path / "nowhere")]) == 1


def with_uncertainty(s: xr.Dataset, p: float) -> xr.Dataset:
    """fake_scores plus 10 % intervals on every score and the same p-value ``p`` for sfno vs persistence."""
    names = ["sfno", "persistence", "climatology"]
    values = xr.concat([s[n] for n in names], "source").assign_coords(source=names)
    s["score_interval"] = xr.concat([0.9 * values, 1.1 * values], "bound").assign_coords(
        bound=["lower", "upper"]).transpose("source", "bound", ...)
    s["p_value"] = xr.full_like(s["sfno"], p).expand_dims(reference=["persistence"])
    s.attrs.update(confidence=0.9, n_init_times=30)
    return s


def test_scorecard_marks_significance_and_score_plots_draw_intervals(tmp_path):
    strong, weak = with_uncertainty(fake_scores(), 0.01), with_uncertainty(fake_scores(), 0.5)
    table = plots.relative_skill(strong, "persistence", significance=True)
    np.testing.assert_allclose(table.loc["RMSE z500"], 0.01)
    assert plots.relative_skill(strong, "climatology", significance=True).isna().all().all()  # no p-values there
    a = pixels(save_figure(plots.scorecard(strong, "persistence"), tmp_path / "strong.png", dpi=50))
    b = pixels(save_figure(plots.scorecard(weak, "persistence"), tmp_path / "weak.png", dpi=50))
    assert a.shape == b.shape and np.abs(a - b).sum() > 1000  # hatching on the insignificant cells
    bars = pixels(save_figure(plots.metric_vs_lead(strong, "rmse"), tmp_path / "bars.png", dpi=50))
    plain = pixels(save_figure(plots.metric_vs_lead(fake_scores(), "rmse"), tmp_path / "plain.png", dpi=50))
    assert bars.shape == plain.shape and np.abs(bars - plain).sum() > 1000


def test_lead_chart_data_holds_every_score_and_interval_of_the_page():
    s = with_uncertainty(fake_scores(leads=3), 0.01)
    data = lead_chart_data(s)
    assert data["hours"] == [6.0, 12.0, 18.0] and data["regions"] == ["global", "land"]
    assert data["variables"] == ["z500", "msl"] and data["units"] == ["m² s⁻²", "Pa"]
    titles = [v["title"] for v in data["views"]]
    assert titles == ["RMSE vs lead time", "ACC vs lead time", "CRPS vs lead time",
                      "spread and RMSE of the ensemble mean", "spread / skill"]
    rmse = {x["name"]: x for x in data["views"][0]["series"]}
    assert list(rmse) == ["sfno", "persistence", "climatology"]
    assert rmse["persistence"]["y"][1][0] == [2.0, 2.0, 2.0]  # [region][variable][lead]: land, z500
    assert rmse["sfno"]["lo"][0][1] == [0.9] * 3 and rmse["sfno"]["hi"][0][1] == [1.1] * 3
    acc = [x["name"] for x in data["views"][1]["series"]]
    assert acc == ["sfno", "persistence"] and data["views"][1]["unitless"]  # climatology has no ACC: no curve
    ratio = data["views"][-1]
    assert ratio["ref"] == pytest.approx(np.sqrt(5 / 6)) and [x["name"] for x in ratio["series"]] == ["sfno"]
    page = lead_chart(s)
    assert "const LEAD_DATA = {" in page and "function ticks(" in page  # data and script inline
    assert not re.search(r"(src|href)=['\"]https?:|fetch\(|XMLHttpRequest|import\(", page)  # nothing fetched


def test_png_figures_are_palette_images_a_third_of_the_rgba_bytes(tmp_path):
    lon = np.deg2rad(np.arange(36) * 10.0)
    z = field(54000 + 3000 * np.cos(np.deg2rad(np.linspace(90, -90, 19)))[:, None] * np.cos(2 * lon)[None, :])
    fig = map_figure([Panel(z, "forecast")], style_for("z500", "m**2 s**-2"), "robinson", "z500", gridlines=False)
    save_figure(fig, tmp_path / "first.png", dpi=60)  # the first draw settles the constrained layout
    small = save_figure(fig, tmp_path / "p.png", dpi=60)
    rgba = save_figure(fig, tmp_path / "rgba.png", dpi=60, palette=False)
    with Image.open(small) as im:
        assert im.mode == "P"
    assert small.stat().st_size < 0.5 * rgba.stat().st_size
    a, b = pixels(small), pixels(rgba)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3.0 and np.abs(a - b).max() <= 24  # of 255: the same


def test_maps_in_forecasters_units_with_ranges_per_lead():
    z = style_for("z500", "m**2 s**-2")
    assert z.shown_units == "dam" and z.display.contour == 8.0
    np.testing.assert_allclose(z.shown(np.array([5500.0 * 9.80665 * 10 / 10])), 550.0)  # 5500 gpm = 550 dam
    msl = style_for("msl", "Pa")
    np.testing.assert_allclose(msl.shown(np.array([101325.0])), 1013.25)
    np.testing.assert_allclose(msl.shown(np.array([250.0]), difference=True), 2.5)
    assert style_for("t2m", "K").shown(np.array([273.15])) == pytest.approx(0.0)
    assert style_for("msl", "hPa").display is None  # not the units the convention converts from
    # Ranges of one lead: the fields' 1st-99th percentiles widened to whole contour intervals (4 hPa).
    fields = [np.linspace(99_310.0, 102_090.0, 1001)]  # 993.1 .. 1020.9 hPa
    lead = lead_style(msl, fields, [np.linspace(-730.0, 730.0, 101)])
    lo, hi = msl.shown(np.array([lead.vmin, lead.vmax]))
    assert (lo, hi) == pytest.approx((992.0, 1024.0)) and not lead.fixed
    assert lead.error == pytest.approx(1000.0)  # 99th percentile of |error| 7.2 hPa -> 10 hPa
    fixed = lead_style(msl, fields, None, ranges={"msl": (95000.0, 105000.0)}, variable="msl")
    assert fixed.vmin == msl.vmin and fixed.error == msl.error


def test_polar_maps_are_clipped_to_a_circle(tmp_path):
    lat = np.linspace(90, -90, 19)
    f = field(101000 + 1000 * np.cos(np.deg2rad(lat))[:, None] * np.ones((1, 36)))
    style = style_for("msl", "Pa")
    img = pixels(save_figure(map_figure([Panel(f, "msl")], style, "north_polar", "t"), tmp_path / "p.png", dpi=60))
    h, w, _ = img.shape
    # The corner of the map's square (inside the axes, outside the circle) is background, the centre is drawn.
    centre = img[int(0.42 * h), w // 2]
    corner = img[int(0.12 * h), int(0.08 * w)]
    assert (corner == 255).all() and not (centre == 255).all()
