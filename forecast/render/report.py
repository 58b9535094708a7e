"""``forecast report``: the tables and figures of an evaluation as one self-contained HTML page (and Markdown).

``report.html`` embeds every figure as a base64 data URI and fetches nothing: it opens offline, mailed or
copied on its own. It holds a table of contents; the run's provenance (product, model, truth,
climatology, initial times, configuration, versions); a warning when the scores rest on few initial
times and a one-line dispersion verdict for ensembles; the global scores with their confidence intervals
and units at a few leads, each row at one precision (three significant digits of its largest value);
the relative skill against a baseline with its significance; interactive charts of the scores against lead
time with their intervals (:mod:`forecast.render.lead_plots`: hover values, zoom, series toggles) in place of
the static ones; every other figure of ``forecast render``; and an interactive view: a variable, lead and
member selector over the pre-rendered frames of ``forecast render``. The scripts are plain JavaScript in the
page, no library, no network. ``report.md`` has the same tables and links every figure by relative path.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.score import dispersion_verdict, few_cases_warning, read_scores, score_summary
from forecast.render import lead_plots
from forecast.render.plots import relative_skill
from forecast.render.styles import text_units
from forecast.storage import atomic_file

__all__ = ["row_decimals", "write_pages", "write_report"]

_ORDER = ("lead", "scorecard", "spread_skill", "rank_histogram", "spectra", "map", "skill_map", "animation")
_SECTIONS = {"lead": "Scores against lead time", "scorecard": "Scorecards", "spread_skill": "Spread and skill",
             "rank_histogram": "Rank histograms", "spectra": "Energy spectra", "map": "Maps",
             "skill_map": "Skill at every grid point", "animation": "Rollout"}
_UNITLESS = {"acc", "spread_skill", "spread_skill_corrected"}
_CHARTED = ("lead", "spread_skill")  # figures the page's interactive charts replace (report.md links them)


def _fmt(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.4g}"


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` (index levels as leading columns), values formatted with :func:`_fmt`."""
    flat = table.reset_index()
    head = [str(c) for c in flat.columns]
    rows = [[_fmt(x) if isinstance(x, float) else str(x) for x in row] for row in flat.itertuples(index=False)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def row_decimals(values: np.ndarray, digits: int = 3) -> int:
    """Decimals that give the largest ``|value|`` of a row ``digits`` significant digits (0 to 6), used for the
    whole row so that its numbers line up at one precision."""
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:
        return 0
    return int(np.clip(digits - 1 - np.floor(np.log10(finite.max())), 0, 6))


def _scores_table(scores: xr.Dataset) -> pd.DataFrame:
    """Global scores at a few leads as text: ``value [lower, upper]`` at one precision per row, with units."""
    table = score_summary(scores)
    has_ci = "score_interval" in scores
    low, high = (score_summary(scores, bound=b) for b in ("lower", "upper")) if has_ci else (table, table)
    units = dict(zip(scores["variable"].values.tolist(), scores["units"].values.tolist(), strict=True))
    rows = []
    for key, values in table.iterrows():
        d = row_decimals(values.to_numpy())
        cells = {}
        for col, v in values.items():
            lo, hi = low.loc[key, col], high.loc[key, col]
            text = "" if not np.isfinite(v) else f"{v:.{d}f}"
            if text and has_ci and np.isfinite(lo):
                text += f" [{lo:.{d}f}, {hi:.{d}f}]"
            cells[col] = text
        metric, variable, forecast = key
        unit = "1" if metric in _UNITLESS else text_units(units[variable])
        rows.append({"metric": metric, "variable": variable, "units": unit, "forecast": forecast, **cells})
    return pd.DataFrame(rows).set_index(["metric", "variable", "units", "forecast"])


def _skill_table(scores: xr.Dataset, baseline: str) -> pd.DataFrame:
    """Relative skill vs ``baseline`` (global) at one decimal, ``*`` where the paired difference is significant."""
    if baseline not in scores:
        return pd.DataFrame()
    skill = relative_skill(scores, baseline)
    p = relative_skill(scores, baseline, significance=True)
    alpha = 1.0 - float(scores.attrs.get("confidence", 0.9))
    text = skill.copy().astype(object)
    for col in skill.columns:
        text[col] = ["" if not np.isfinite(v) else f"{v:+.1f}{'*' if q < alpha else ''}"
                     for v, q in zip(skill[col], p[col], strict=True)]
    return text.rename(columns=lambda h: f"{h:g} h").rename_axis("score (% better; ACC: points)")


def _provenance(scores: xr.Dataset) -> list[tuple[str, str]]:
    a = scores.attrs
    rows = [("forecast", a.get("forecast")), ("product", a.get("product")), ("model", a.get("product_model_name")),
            ("model package sha256", a.get("product_model_sha256")), ("product history", a.get("product_history")),
            ("truth", a.get("truth")), ("climatology", a.get("climatology")),
            ("initial times", f"{a.get('n_init_times')} ({a.get('first_init_time')} .. {a.get('last_init_time')} UTC)"),
            ("members", a.get("members")), ("regions", ", ".join(map(str, scores["region"].values))),
            ("baselines", a.get("baselines")), ("definitions", a.get("definitions"))]
    if "score_interval" in scores:
        blocks = scores["block_length"].values
        rows.append(("intervals", f"{100 * float(a['confidence']):g}% percentile intervals, circular block bootstrap "
                                  f"over initial times, {a.get('n_resamples')} resamples, block length "
                                  f"{int(blocks.min())}-{int(blocks.max())} (Wilks 1997, from the lag-1 "
                                  "autocorrelation of each score's series); significance: paired bootstrap"))
    rows.append(("forecast version", a.get("forecast_version")))
    return [(k, str(v)) for k, v in rows if v not in (None, "None")]


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _explorer(figures: list[dict], folder: Path) -> str:
    """The interactive view: selectors over the embedded frames (kind ``frame``) and the script that swaps them."""
    frames: dict = {}
    for f in (f for f in figures if f["kind"] == "frame"):
        frames.setdefault(f["variable"], {}).setdefault(f["member"], []).append(
            {"lead": f["lead_hours"], "title": f["title"], "src": _data_uri(folder / f["path"])})
    for members in frames.values():
        for items in members.values():
            items.sort(key=lambda x: x["lead"])
    data = json.dumps(frames).replace("</", "<\\/")
    return (
        "<div id='explorer'><p>Choose a variable, a lead time and a member (the ensemble mean or forecast, the "
        "truth, or single members); click the map to zoom. Frames are pre-rendered by <code>forecast render</code> "
        "and embedded in this page.</p>"
        "<label>variable <select id='ex-variable'></select></label> "
        "<label>member <select id='ex-member'></select></label> "
        "<label>lead <input type='range' id='ex-lead' min='0' max='0' step='1' value='0'></label> "
        "<output id='ex-lead-label'></output>"
        "<figure><img id='ex-map' class='zoomable' alt='interactive map'><figcaption id='ex-title'></figcaption>"
        "</figure></div>"
        f"<script>const FRAMES = {data};\n{_SCRIPT}</script>")


_SCRIPT = """
(function () {
  const variable = document.getElementById('ex-variable');
  const member = document.getElementById('ex-member');
  const lead = document.getElementById('ex-lead');
  const label = document.getElementById('ex-lead-label');
  const img = document.getElementById('ex-map');
  const title = document.getElementById('ex-title');
  function fill(select, names) {
    const keep = select.value;
    select.innerHTML = '';
    names.forEach(function (n) { const o = document.createElement('option'); o.value = n; o.textContent = n;
                                 select.appendChild(o); });
    if (names.indexOf(keep) >= 0) { select.value = keep; }
  }
  function frames() { return FRAMES[variable.value][member.value]; }
  function show() {
    const list = frames();
    const i = Math.min(Number(lead.value), list.length - 1);
    img.src = list[i].src;
    img.alt = list[i].title;
    title.textContent = list[i].title;
    label.textContent = '+' + list[i].lead + ' h';
    img.dataset.lead = String(list[i].lead);
  }
  function pickVariable() {
    fill(member, Object.keys(FRAMES[variable.value]));
    lead.max = String(frames().length - 1);
    show();
  }
  fill(variable, Object.keys(FRAMES));
  variable.addEventListener('change', pickVariable);
  member.addEventListener('change', show);
  lead.addEventListener('input', show);
  img.addEventListener('click', function () { img.classList.toggle('zoomed'); });
  pickVariable();
})();
"""

_CSS = ("body{font-family:sans-serif;max-width:1700px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right;white-space:nowrap}img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}"
        ".warning{background:#fff3cd;border:1px solid #e0c36c;padding:0.5em 1em}.verdict{background:#eef5ff;"
        "border:1px solid #9bb8e0;padding:0.5em 1em}nav li{margin:0.1em 0}dl{display:grid;grid-template-columns:"
        "max-content auto;gap:0.2em 1em}dt{font-weight:bold}dd{margin:0}pre{background:#f6f6f6;padding:0.5em;"
        "overflow-x:auto;font-size:12px}img.zoomable{max-width:60%;cursor:zoom-in}img.zoomed{max-width:100%;"
        "cursor:zoom-out}#explorer label{margin-right:1em}" + lead_plots.CSS)


def _section(sid: str, title: str, body: list[str]) -> list[str]:
    return [f"<section id='{sid}'><h2>{html.escape(title)}</h2>", *body, "</section>"]


def write_report(run_dir: str | Path, baseline: str = "persistence") -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for the evaluation in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    scores = read_scores(run_dir)
    index = run_dir / "figures" / "index.json"
    if not index.exists():
        raise InputError(f"no figures in {run_dir / 'figures'}; run `forecast render {run_dir}` first")
    figures = json.loads(index.read_text())["figures"]
    title = f"Evaluation of {scores.attrs.get('forecast')}"
    table, skill = _scores_table(scores), _skill_table(scores, baseline)
    ci = (f" with {100 * float(scores.attrs['confidence']):g}% intervals in brackets"
          if "score_interval" in scores else "")
    skill_title = f"Relative skill vs {baseline} (global)"
    notes = [("warning", few_cases_warning(scores)), ("verdict", dispersion_verdict(scores))]
    notes = [(k, v) for k, v in notes if v]
    sections = [(kind, [f for f in figures if f["kind"] == kind]) for kind in _ORDER]
    sections = [(kind, items) for kind, items in sections if items]
    alpha = 100 * (1.0 - float(scores.attrs.get("confidence", 0.9)))

    md = [f"# {title}", "", *[f"- **{k}**: {v}" for k, v in _provenance(scores)], ""]
    md += [f"> **{k}**: {v}" + "\n" for k, v in notes]
    md += ["## Global scores", "", f"Values{ci}; units per row.", "", _markdown(table), ""]
    if not skill.empty:
        md += [f"## {skill_title}", "", f"% better (ACC: points); * significant at {alpha:g}%.", "",
               _markdown(skill), ""]
    md += ["Full tables: [scores.csv](scores.csv) (every region and lead, with intervals), [scores.nc](scores.nc).", ""]
    for kind, items in sections:
        md += [f"## {_SECTIONS[kind]}", ""]
        md += [f"![{f['title']}](figures/{f['path']})\n\n*{f['title']}*\n" for f in items]

    toc = [("about", "Provenance"), ("scores", "Global scores")] + ([("skill", skill_title)] if not skill.empty else [])
    chart = lead_plots.lead_chart(scores)
    if chart:  # the charts draw what the static lead and spread/skill figures show: not embedded twice
        html_sections = [("lead", [])] + [(k, items) for k, items in sections if k not in _CHARTED]
    else:
        html_sections = sections
    toc += [(kind, _SECTIONS[kind]) for kind, _ in html_sections]
    has_frames = any(f["kind"] == "frame" for f in figures)
    toc += [("explore", "Explore the maps")] if has_frames else []
    page = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    page += [f"<p class='{k}'><b>{k}</b>: {html.escape(v)}</p>" for k, v in notes]
    page += ["<nav><h2>Contents</h2><ol>", *[f"<li><a href='#{sid}'>{html.escape(t)}</a></li>" for sid, t in toc],
             "</ol></nav>"]
    about = ["<dl>", *[f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in _provenance(scores)], "</dl>"]
    if scores.attrs.get("evaluate_config"):
        about += ["<details><summary>evaluation config</summary><pre>"
                  f"{html.escape(str(scores.attrs['evaluate_config']))}</pre></details>"]
    page += _section("about", "Provenance", about)
    page += _section("scores", "Global scores", [f"<p>Values{html.escape(ci)}.</p>", table.to_html()])
    if not skill.empty:
        page += _section("skill", skill_title, [f"<p>% better than {html.escape(baseline)} (ACC: points); * "
                                                f"significant at {alpha:g}% (paired block bootstrap).</p>",
                                                skill.to_html()])
    page += ["<p>Full tables (every region and lead, with intervals): scores.csv and scores.nc beside this page.</p>"]
    for kind, items in html_sections:
        page += _section(kind, _SECTIONS[kind], [chart] if kind == "lead" and chart else [
            f"<figure><img src='{_data_uri(run_dir / 'figures' / f['path'])}' alt='{html.escape(f['title'])}'>"
            f"<figcaption>{html.escape(f['title'])}</figcaption></figure>" for f in items])
    if has_frames:
        page += _section("explore", "Explore the maps", [_explorer(figures, run_dir / "figures")])
    page.append("</body></html>")
    return write_pages(run_dir, md, page)


def write_pages(run_dir: Path, md: list[str], page: list[str]) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``run_dir`` from their lines, each atomically."""
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    with atomic_file(md_path) as tmp:
        tmp.write_text("\n".join(md))
    with atomic_file(html_path) as tmp:
        tmp.write_text("\n".join(page))
    return md_path, html_path
