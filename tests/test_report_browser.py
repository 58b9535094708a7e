"""The report in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium
loads report.html from disk, moves the lead selector and the member selector, sees the map change; hovers, zooms
and toggles the score-vs-lead charts and reads the scores off them; and finds no error in the console and no
request leaving the file. Skips, saying why, where Chromium or its driver is missing (README: `apt-get install
-y chromium chromium-driver`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from forecast.evaluate.config import EvaluateConfig
from forecast.evaluate.score import read_scores, run_evaluate
from forecast.render.report import write_report
from forecast.render.run import render_evaluation
from forecast.testing import evaluation_store, noisy_product

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="headless Chromium not found: apt-get install -y chromium chromium-driver (Debian) to run the browser test")


@pytest.fixture
def report(tmp_path):
    store = evaluation_store(tmp_path)
    inits = np.array(["2000-02-01T00", "2000-02-02T00"], dtype="datetime64[ns]")
    product = noisy_product(store, tmp_path / "ens.zarr", inits, 4, members=3, noise=0.05)
    cfg = EvaluateConfig.model_validate({
        "regions": ["global"], "metrics": ["rmse", "crps"], "baselines": ["persistence"],
        "statistics": {"n_resamples": 100},
        "render": {"variables": ["msl"], "map_leads": [], "skill_map_leads": [], "dpi": 30,
                   "animation": {"variable": "msl", "max_frames": 2},
                   "interactive": {"lead_every": "6h", "members": 1, "dpi": 30}}})
    run = tmp_path / "run"
    run_evaluate(cfg, product, store, run, progress=False)
    render_evaluation(cfg, run, progress=False)
    return write_report(run)[1]


def chromium(profile) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)


def test_report_explorer_moves_through_leads_and_members_offline(report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = chromium(tmp_path / "profile")
    try:
        driver.get(report.resolve().as_uri())
        img = driver.find_element(By.ID, "ex-map")
        first, lead0 = img.get_attribute("src"), img.get_attribute("data-lead")
        assert first.startswith("data:image/png;base64,") and lead0 == "6"
        slider = driver.find_element(By.ID, "ex-lead")
        slider.send_keys(Keys.ARROW_RIGHT)  # a real key press on the range input: the browser fires `input`
        moved = img.get_attribute("src")
        assert img.get_attribute("data-lead") == "12" and moved != first
        assert driver.find_element(By.ID, "ex-title").text.startswith("msl: init 2000-02-01 00 UTC, +12 h")
        member = Select(driver.find_element(By.ID, "ex-member"))
        assert set(o.text for o in member.options) == {"ensemble mean", "truth", "member 0"}
        member.select_by_visible_text("truth")
        assert img.get_attribute("src") not in (first, moved) and img.get_attribute("data-lead") == "12"
        assert_offline_without_errors(driver, report)
    finally:
        driver.quit()


def assert_offline_without_errors(driver, report) -> None:
    """No error in the console, and every request of the page is the file itself or a data URI."""
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    page = report.resolve().as_uri()
    urls = [m["params"]["request"]["url"] for m in (json.loads(e["message"])["message"]
                                                     for e in driver.get_log("performance"))
            if m["method"] == "Network.requestWillBeSent" and m["params"].get("documentURL") == page]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls  # nothing leaves the file


def test_score_charts_hover_zoom_and_toggle_series_offline(report, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    scores = read_scores(report.parent)
    driver = chromium(tmp_path / "profile")
    try:
        driver.get(report.resolve().as_uri())
        assert "rmse_vs_lead.png" not in driver.page_source  # the charts replace the static plots in the page
        panels = driver.find_elements(By.CSS_SELECTOR, "svg.lp-panel")
        assert [p.get_attribute("data-variable") for p in panels] == ["z500", "msl"]
        assert (panels[0].get_attribute("data-x0"), panels[0].get_attribute("data-x1")) == ("6", "24")
        # Hover: the values at the nearest lead, as stored in scores.nc, with the intervals.
        over = panels[0].find_element(By.CSS_SELECTOR, "rect.lp-over")
        ActionChains(driver).move_to_element(over).perform()
        tip = driver.find_element(By.ID, "lp-tip")
        assert tip.is_displayed() and tip.get_attribute("data-variable") == "z500"
        lead = np.timedelta64(int(tip.get_attribute("data-lead")), "h")
        rmse = float(scores["noisy-truth"].sel(metric="rmse", region="global", variable="z500", lead_time=lead))
        low = float(scores["score_interval"].sel(source="noisy-truth", bound="lower", metric="rmse", region="global",
                                                 variable="z500", lead_time=lead))
        assert f"noisy-truth {float(f'{rmse:.4g}'):g} [{float(f'{low:.4g}'):g}, " in tip.text
        assert "persistence" in tip.text
        # Toggle a series off and on in every panel.
        toggle = "button.lp-toggle[data-series='persistence']"  # the legend is redrawn on each click: found anew
        shown = "svg.lp-panel g.lp-series[data-series='persistence']"
        assert len(driver.find_elements(By.CSS_SELECTOR, shown)) == 2
        driver.find_element(By.CSS_SELECTOR, toggle).click()
        assert driver.find_elements(By.CSS_SELECTOR, shown) == []
        assert driver.find_element(By.CSS_SELECTOR, toggle).get_attribute("aria-pressed") == "false"
        driver.find_element(By.CSS_SELECTOR, toggle).click()
        assert len(driver.find_elements(By.CSS_SELECTOR, shown)) == 2
        # Drag across the middle of a panel: every panel zooms on that lead range; double-click: the whole range.
        over = driver.find_elements(By.CSS_SELECTOR, "svg.lp-panel rect.lp-over")[1]
        ActionChains(driver).move_to_element_with_offset(over, -90, 0).click_and_hold().move_by_offset(150, 0) \
            .release().perform()
        for p in driver.find_elements(By.CSS_SELECTOR, "svg.lp-panel"):
            assert 6 < float(p.get_attribute("data-x0")) < float(p.get_attribute("data-x1")) < 24
        ActionChains(driver).double_click(driver.find_elements(By.CSS_SELECTOR, "svg.lp-panel rect.lp-over")[0]) \
            .perform()
        assert driver.find_element(By.ID, "lead-plots").get_attribute("data-range") == "6-24"
        # Another score and region redraw the panels.
        Select(driver.find_element(By.ID, "lp-view")).select_by_visible_text("CRPS vs lead time")
        Select(driver.find_element(By.ID, "lp-region")).select_by_visible_text("global")
        assert "CRPS [" in driver.find_elements(By.CSS_SELECTOR, "svg.lp-panel")[0].text
        assert_offline_without_errors(driver, report)
    finally:
        driver.quit()
