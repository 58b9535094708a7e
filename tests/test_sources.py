"""WeatherBench2 / ARCO-ERA5 zarr sources: zarr format 2 with Blosc, on disk and at URLs (HTTP, memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.cli import main
from forecast.errors import InputError
from forecast.evaluate.score import read_scores
from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest
from forecast.ingest.readers import expand_paths
from forecast.naturalearth import land_fraction
from forecast.testing import analytic_field, weatherbench_store


def wb2_config(source: str, out: Path, **over) -> IngestConfig:
    tree = {
        "sources": [{"paths": [source]}],
        "channels": [{"variable": "z", "level": 500}, {"variable": "u", "level": 850}, {"variable": "msl"}],
        "grid": {"type": "equiangular", "nlat": 37, "nlon": 72},
        "stats": {"start": None, "end": None},
        "output": {"path": str(out), "time_chunk": 4},
    }
    tree.update(over)
    return IngestConfig.model_validate(tree)


@pytest.mark.parametrize("ascending", [True, False], ids=["latitude-ascending", "latitude-descending"])
def test_format2_blosc_store_ingests_with_level_selection(tmp_path, ascending):
    src = weatherbench_store(tmp_path / "wb2.zarr", periods=40, latitude_ascending=ascending)
    assert '"id": "blosc"' in (src / "geopotential" / ".zarray").read_text()  # as the public archives are
    # Invariants from the same store; its geopotential_at_surface is also "z", so it is named as it is.
    static = [{"name": "lsm", "variable": "lsm", "source": {"paths": [str(src)]}},
              {"name": "orography", "variable": "geopotential_at_surface", "units": "m",
               "source": {"paths": [str(src)]}}]
    ds = xr.open_zarr(run_ingest(wb2_config(str(src), tmp_path / "out.zarr", static=static), progress=False).path)
    # Same 5-degree grid with poles in and out: the conservative remap is the identity, so the store holds
    # the analytic fields (north to south) plus each level's offset of level / 10.
    times = pd.date_range("2000-01-01", periods=40, freq="6h").values
    lat, lon = np.linspace(90.0, -90.0, 37), np.arange(72) * 5.0
    np.testing.assert_allclose(ds.z500.values, analytic_field("z", times, lat, lon) + 50.0, rtol=1e-6)
    np.testing.assert_allclose(ds.u850.values, analytic_field("u", times, lat, lon) + 85.0, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(ds.msl.values, analytic_field("msl", times, lat, lon), rtol=1e-6)
    assert ds.z500.attrs["units"] == "m**2 s**-2" and ds.latitude.values[0] == 90.0
    land = land_fraction(lat, lon, supersample=3)
    np.testing.assert_allclose(ds.lsm.values, land, atol=1e-6)
    np.testing.assert_allclose(ds.orography.values, land * 2000.0 + (lat[:, None] + 90.0), rtol=1e-5, atol=1e-3)


@pytest.fixture
def http_server(tmp_path):
    """A static HTTP server on 127.0.0.1 (a separate process) serving ``tmp_path / "www"``, logging each
    file it sends; yields (base URL, log path)."""
    www, log = tmp_path / "www", tmp_path / "http.log"
    www.mkdir()
    script = Path(__file__).with_name("counting_http_server.py")
    proc = subprocess.Popen([sys.executable, str(script), str(www), str(log)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _store_data(path: Path) -> xr.Dataset:
    """A training store without its provenance attributes (they name the source, as they should)."""
    return xr.open_zarr(path).drop_attrs(deep=False).load()


def test_store_over_http_and_in_memory_ingests_as_from_disk_reading_only_the_selection(tmp_path, http_server):
    base, log = http_server
    src = weatherbench_store(tmp_path / "www" / "wb2.zarr", periods=4 * 91)  # Jan - Mar 2000, 4 times per chunk
    one_month = {"channels": [{"variable": "z", "level": 500}],
                 "time": {"start": "2000-01-01", "end": "2000-01-31T18:00"}}
    disk = run_ingest(wb2_config(str(src), tmp_path / "disk.zarr", **one_month), progress=False).path
    http = run_ingest(wb2_config(f"{base}/wb2.zarr", tmp_path / "http.zarr", **one_month), progress=False)
    xr.testing.assert_identical(_store_data(http.path), _store_data(disk))

    # Only January's chunks of geopotential at 500 hPa (level index 0) went over the wire, plus metadata
    # and coordinates: no other variable, level or month.
    sent = [line.split("\t") for line in log.read_text().splitlines()]
    data = {p for p, _ in sent if p.rsplit("/", 1)[0] not in {"/wb2.zarr", *(f"/wb2.zarr/{c}" for c in
                                                              ("time", "level", "latitude", "longitude"))}}
    assert data == {f"/wb2.zarr/geopotential/{t}.0.0.0" for t in range(31)}
    read = sum(int(n) for _, n in sent)
    in_store = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    variable = sum(f.stat().st_size for f in (src / "geopotential").iterdir())
    selection = sum((src / "geopotential" / f"{t}.0.0.0").stat().st_size for t in range(31))
    print(f"\nHTTP: read {read} bytes in {len(sent)} requests of {in_store} in the store ({read / in_store:.1%}); "
          f"geopotential holds {variable}, its 500 hPa January chunks {selection}")
    assert selection < read < selection + 20_000 and read < 0.15 * in_store
    # Same URL and store again: up to date, nothing read but the metadata.
    assert run_ingest(wb2_config(f"{base}/wb2.zarr", tmp_path / "http.zarr", **one_month), progress=False).skipped

    # memory:// with a glob over two stores that split the period, as archives split by year.
    fs = fsspec.filesystem("memory")
    whole = xr.open_zarr(src)
    for name, part in (("a", whole.isel(time=slice(0, 60))), ("b", whole.isel(time=slice(60, 124)))):
        part.to_zarr(f"memory://wb2-test/part-{name}.zarr", mode="w", zarr_format=2, consolidated=True)
    try:
        mem = run_ingest(wb2_config("memory://wb2-test/part-*.zarr", tmp_path / "mem.zarr", **one_month),
                         progress=False).path
        xr.testing.assert_identical(_store_data(mem), _store_data(disk))
    finally:
        fs.rm("/wb2-test", recursive=True)


def test_http_globs_and_url_errors_are_one_line_input_errors(tmp_path, http_server):
    base, _ = http_server
    for name in ("era5-2000.zarr", "era5-2001.zarr", "other.zarr"):
        (tmp_path / "www" / name).mkdir()
    # http.server lists folders as pages of links, which is how fsspec globs over HTTP.
    assert expand_paths([f"{base}/era5-*.zarr"]) == [f"{base}/era5-2000.zarr", f"{base}/era5-2001.zarr"]
    with pytest.raises(InputError, match=r"memory://nowhere/\*\.zarr' matches nothing"):
        run_ingest(wb2_config("memory://nowhere/*.zarr", tmp_path / "o.zarr"), progress=False)
    with pytest.raises(InputError, match=r"/missing\.zarr: cannot be read as zarr"):
        run_ingest(wb2_config(f"{base}/missing.zarr", tmp_path / "o.zarr"), progress=False)
    with pytest.raises(InputError, match=r"only zarr stores are read from URLs"):
        run_ingest(wb2_config(f"{base}/era5.nc", tmp_path / "o.zarr"), progress=False)


def test_products_scores_and_truth_at_memory_urls_equal_local_ones(tmp_path):
    from forecast.products.io import open_product
    from forecast.rollout.config import build_predict_config
    from forecast.rollout.predict import run_predict
    from forecast.testing import evaluation_store, linear_package

    store = evaluation_store(tmp_path / "truth")
    package = linear_package(tmp_path / "linear.pt", store, {"z500": "z500", "msl": "cos_zenith"},
                             {"z500": 0.01, "msl": 0.2})
    fs = fsspec.filesystem("memory")
    fs.put(str(store), "/urls-test/truth.zarr", recursive=True)
    products = {}
    try:
        for where in (str(tmp_path / "local.zarr"), "memory://urls-test/product.zarr"):
            config = build_predict_config(package, [
                f"store={store}", "init={times: [2000-02-01T00:00, 2000-02-02T00:00]}", "lead=4",
                f"output.path={where}", "ensemble.members=3", "ensemble.perturbation={type: white_noise}"])
            products[where] = run_predict(config).path
        local, remote = (open_product(p).load() for p in products.values())
        xr.testing.assert_identical(local.drop_attrs(deep=False), remote.drop_attrs(deep=False))
        assert fs.exists("/urls-test/product.zarr/COMPLETE")
        assert "path: memory://urls-test/product.zarr" in remote.attrs["predict_config"]
        with pytest.raises(InputError, match="memory://urls-test/product.zarr already exists"):
            run_predict(config)

        # Scores of the URL product against the URL truth, written to a URL, equal the local ones.
        assert main(["evaluate", str(tmp_path / "local.zarr"), "--truth", str(store), "--out", str(tmp_path / "s"),
                     "--no-progress", "--set", "regions=[global]", "--set", "statistics.n_resamples=0"]) == 0
        assert main(["evaluate", "memory://urls-test/product.zarr", "--truth", "memory://urls-test/truth.zarr",
                     "--out", "memory://urls-test/scores", "--no-progress", "--set", "regions=[global]",
                     "--set", "statistics.n_resamples=0"]) == 0
        fs.get("/urls-test/scores", str(tmp_path / "from-memory"), recursive=True)
        a, b = read_scores(tmp_path / "s"), read_scores(tmp_path / "from-memory")
        xr.testing.assert_allclose(a.drop_attrs(deep=False), b.drop_attrs(deep=False), rtol=1e-12)
    finally:
        fs.rm("/urls-test", recursive=True)
