"""``forecast report``: one static page (Markdown and HTML) gathering the tables and figures of an evaluation.

It reads ``scores.nc`` and ``figures/index.json`` of a run folder and writes ``report.md`` and
``report.html`` beside them; figures are linked by relative path, so the folder can be copied or
served as it is.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.score import read_scores, score_summary
from forecast.render.plots import relative_skill
from forecast.storage import atomic_file

__all__ = ["write_pages", "write_report"]

_ORDER = ("figures: scores", "lead", "scorecard", "spread_skill", "rank_histogram", "spectra", "map", "skill_map",
          "animation")
_SECTIONS = {"lead": "Scores against lead time", "scorecard": "Scorecards", "spread_skill": "Spread and skill",
             "rank_histogram": "Rank histograms", "spectra": "Energy spectra", "map": "Maps",
             "skill_map": "Skill at every grid point", "animation": "Rollout"}


def _about(scores: xr.Dataset) -> list[tuple[str, str]]:
    a = scores.attrs
    return [("forecast", str(a.get("forecast"))), ("product", str(a.get("product", "?"))),
            ("truth", str(a.get("truth", "?"))), ("climatology", str(a.get("climatology", "?"))),
            ("initial times", f"{a.get('n_init_times')} ({a.get('first_init_time')} .. {a.get('last_init_time')})"),
            ("members", str(a.get("members"))), ("regions", ", ".join(map(str, scores["region"].values))),
            ("definitions", str(a.get("definitions", "")))]


def _fmt(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.4g}"


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` (index levels as leading columns), values formatted with :func:`_fmt`."""
    flat = table.reset_index()
    head = [str(c) for c in flat.columns]
    rows = [[_fmt(x) if isinstance(x, float) else str(x) for x in row] for row in flat.itertuples(index=False)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_report(run_dir: str | Path, baseline: str = "persistence") -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for the evaluation in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    scores = read_scores(run_dir)
    index = run_dir / "figures" / "index.json"
    if not index.exists():
        raise InputError(f"no figures in {run_dir / 'figures'}; run `forecast render {run_dir}` first")
    figures = json.loads(index.read_text())["figures"]
    summary = score_summary(scores)
    skill = relative_skill(scores, baseline) if baseline in scores else pd.DataFrame()
    skill = skill.rename(columns=lambda h: f"{h:g} h")
    title = f"Evaluation of {scores.attrs.get('forecast')}"
    skill_title = f"Relative skill vs {baseline} (% better; ACC: points; global)"
    sections: list[tuple[str, list[dict]]] = []
    for kind in _ORDER:
        items = [f for f in figures if f["kind"] == kind]
        if items:
            sections.append((_SECTIONS[kind], items))

    md = [f"# {title}", "", *[f"- **{k}**: {v}" for k, v in _about(scores)], "",
          "## Global scores", "", _markdown(summary), ""]
    if not skill.empty:
        md += [f"## {skill_title}", "", _markdown(skill.rename_axis("score")), ""]
    md += ["Full tables: [scores.csv](scores.csv) (every region and lead), [scores.nc](scores.nc).", ""]
    for name, items in sections:
        md += [f"## {name}", ""]
        md += [f"![{f['title']}](figures/{f['path']})\n\n*{f['title']}*\n" for f in items]

    css = ("body{font-family:sans-serif;max-width:1700px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;"
           "text-align:right}img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}")
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1><ul>"]
    page += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _about(scores)]
    page += ["</ul><h2>Global scores</h2>", summary.map(_fmt).to_html()]
    if not skill.empty:
        page += [f"<h2>{html.escape(skill_title)}</h2>", skill.map(_fmt).to_html()]
    page += ["<p>Full tables: <a href='scores.csv'>scores.csv</a>, <a href='scores.nc'>scores.nc</a>.</p>"]
    for name, items in sections:
        page.append(f"<h2>{html.escape(name)}</h2>")
        page += [f"<figure><img src='figures/{html.escape(f['path'])}' alt='{html.escape(f['title'])}'>"
                 f"<figcaption>{html.escape(f['title'])}</figcaption></figure>" for f in items]
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
