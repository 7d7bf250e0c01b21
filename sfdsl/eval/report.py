"""Self-contained HTML eval report with base64-embedded matplotlib (Agg) plots."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sfdsl.eval.metrics import pareto_front
from sfdsl.eval.table import COMPARISON_HEADERS, comparison_rows, summary_sections

Summaries = Sequence[tuple[str, Mapping[str, Any]]]


def page_head(title: str) -> str:
    """The opening of a report page (shared style, title, generation line), for ``sfrun eval`` and ``sfrun tune``."""
    return _HEAD.replace("TITLE", title)


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>TITLE</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #555; }
.note { color: #777; font-style: italic; }
code { background: #f6f6f6; padding: 0 0.2em; }
</style></head><body>
<h1>TITLE</h1>
<p>Generated {{ generated }}.{% for k, v in meta.items() %} <b>{{ k }}</b>: <code>{{ v }}</code>{% endfor %}</p>
"""

#: The plots section of a report page: ``plots`` is a list of {id, title, png (base64)}.
PLOTS = """<h2>Plots</h2>
<div class="plots">
{% for p in plots %}<figure id="plot-{{ p.id }}">
<img alt="{{ p.title }}" src="data:image/png;base64,{{ p.png }}" width="480">
<figcaption>{{ p.title }}</figcaption></figure>
{% endfor %}</div>
"""

_TEMPLATE = page_head("sfrun eval report") + """<h2>Comparison</h2>
<table id="comparison"><tr>
{% for h in headers %}<th{% if h == 'recipe' %} class="l"{% endif %}>{{ h }}</th>{% endfor %}</tr>
{% for row in comparison %}<tr>
{% for c in row %}<td{% if loop.index == 2 %} class="l"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
""" + PLOTS + """{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}
{% for label, sections, fails in recipes %}
<h2>{{ label }}</h2>
{% for title, rows in sections.items() %}<table class="summary">
<tr><th class="l" colspan="{{ rows | map('length') | max }}">{{ title }}</th></tr>
{% for row in rows %}<tr><td class="l">{{ row[0] }}</td>
{% for v in row[1:] %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endfor %}
{% if fails %}<table class="failures"><tr><th class="l">failed item</th><th class="l">sample</th>
<th class="l">kind</th><th class="l">reason</th></tr>
{% for f in fails %}<tr><td class="l">{{ f.item_id }}</td><td class="l">{{ f.sample }}</td>
<td class="l">{{ f.kind }}</td><td class="l">{{ f.error }}</td></tr>{% endfor %}
</table>{% endif %}
{% endfor %}
</body></html>
"""


def png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_accuracy_cost(summaries: Summaries) -> str:
    """Accuracy vs mean tokens per item, one point per recipe, Pareto front marked; PNG as base64."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    pts = [(s["cost"]["tokens_per_item"], s["accuracy"]) for _, s in summaries]
    front = pareto_front(pts)
    for (label, _), (x, y), on in zip(summaries, pts, front, strict=False):
        ax.scatter(
            [x], [y], marker="*" if on else "o", s=140 if on else 50, color="tab:red" if on else "tab:blue", zorder=3
        )
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fx = sorted(p for p, on in zip(pts, front, strict=False) if on)
    if len(fx) > 1:
        ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="tab:red", alpha=0.5, label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("mean tokens per item")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs cost (★ = Pareto front)")
    ax.grid(alpha=0.3)
    return png(fig)


def plot_reliability(summaries: Summaries) -> str | None:
    """Reliability diagram of every recipe with probability scores; None if there are none."""
    cal = [(label, s["calibration"]) for label, s in summaries if "bins" in s.get("calibration", {})]
    if not cal:
        return None
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    for label, c in cal:
        xs = [b["confidence"] for b in c["bins"]]
        ys = [b["accuracy"] for b in c["bins"]]
        ax.plot(xs, ys, marker="o", label=f"{label} (ECE {c['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence (score) in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("Reliability diagram")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def plot_risk_coverage(summaries: Summaries) -> str | None:
    """Risk-coverage curves of every recipe with scores or abstentions; None if there are none."""
    sel = [(label, s["selective"]) for label, s in summaries if s.get("selective", {}).get("risk_coverage")]
    if not sel:
        return None
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for label, s in sel:
        pts = [(0.0, s["risk_coverage"][0][1])] + [tuple(p) for p in s["risk_coverage"]]
        ax.step(
            [p[0] for p in pts], [p[1] for p in pts], where="pre", marker=".", label=f"{label} (AURC {s['aurc']:.3f})"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage")
    ax.set_ylabel("risk (error rate among answered)")
    ax.set_title("Risk–coverage")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def render_report(
    summaries: Summaries,
    comparison: Sequence[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any] | None = None,
    failures: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    max_failures: int = 50,
) -> str:
    """Render the HTML report.

    Args:
        summaries: ``(label, summary)`` per recipe (from ``metrics.summarize``).
        comparison: Rows from ``metrics.compare``.
        meta: Extra facts shown in the header (dataset, metric...).
        failures: Per label, failed items (``item_id``, ``sample``, ``kind``, ``error``).
        max_failures: Failures listed per recipe.

    Returns:
        A self-contained HTML document.
    """
    plots, notes = [], []
    candidates = [
        ("accuracy-cost", "Accuracy vs mean tokens per item", plot_accuracy_cost(summaries)),
        ("reliability", "Reliability diagram", plot_reliability(summaries)),
        ("risk-coverage", "Risk–coverage curve", plot_risk_coverage(summaries)),
    ]
    for pid, title, png in candidates:
        if png is None:
            what = "probability scores" if pid == "reliability" else "scores or abstentions"
            notes.append(f"No {title.lower()}: no recipe returned {what}.")
        else:
            plots.append({"id": pid, "title": title, "png": png})
    failures = failures or {}
    recipes = [(label, summary_sections(s), list(failures.get(label, []))[:max_failures]) for label, s in summaries]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        meta=dict(meta or {}),
        headers=COMPARISON_HEADERS,
        comparison=comparison_rows(comparison),
        plots=plots,
        notes=notes,
        recipes=recipes,
    )


def write_report(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    """Render (see :func:`render_report`) and write the report; returns its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_report(*args, **kwargs), encoding="utf-8")
    return p
