"""The ``sfrun tune`` HTML report: the front (chosen point marked), the trial history, and the test result."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jinja2
from matplotlib.figure import Figure

from sfdsl.eval.report import PLOTS, page_head, png

_TEMPLATE = page_head("sfrun tune report") + """<h2>Choice</h2>
{% if chosen %}<table id="choice">
<tr><td class="l">configuration</td><td class="l"><code>{{ chosen.config }}</code></td></tr>
<tr><td class="l">dev accuracy</td><td class="l">{{ chosen.dev_line }}</td></tr>
{% if chosen.test_line %}<tr><td class="l">test accuracy</td><td class="l">{{ chosen.test_line }}</td></tr>{% endif %}
{% if chosen.paired_line %}<tr><td class="l">against {{ chosen.baseline }}</td>
<td class="l">{{ chosen.paired_line }}</td></tr>{% endif %}
{% if chosen.reproduce %}<tr><td class="l">reproduce</td><td class="l"><code>{{ chosen.reproduce }}</code></td></tr>
{% endif %}</table>
{% else %}<p>No configuration meets the constraints.</p>{% endif %}
""" + PLOTS + """<h2>Dev-split front</h2>
<table id="front"><tr><th class="l">configuration</th><th>items</th><th>accuracy</th><th>95% CI</th>
<th>{{ cost_name }}</th><th>on front</th><th>chosen</th></tr>
{% for r in front %}<tr><td class="l">{{ r.config }}</td><td>{{ r.items }}</td><td>{{ r.accuracy }}</td>
<td>{{ r.ci }}</td><td>{{ r.cost }}</td><td>{{ r.on_front }}</td><td>{{ r.chosen }}</td></tr>
{% endfor %}</table>
<h2>Trials</h2>
<table id="trials"><tr><th>#</th><th class="l">configuration</th><th class="l">state</th><th>items</th>
<th>accuracy</th><th>{{ cost_name }}</th><th class="l">why</th></tr>
{% for t in trials %}<tr><td>{{ t.number }}</td><td class="l">{{ t.config }}</td><td class="l">{{ t.state }}</td>
<td>{{ t.items }}</td><td>{{ t.accuracy }}</td><td>{{ t.cost }}</td><td class="l">{{ t.reason }}</td></tr>
{% endfor %}</table>
</body></html>
"""

_STATE_COLORS = {"complete": "tab:blue", "stopped": "tab:orange", "skipped": "tab:gray", "repeat": "tab:green"}


def plot_front(doc: Mapping[str, Any]) -> str:
    """Dev accuracy (95% CI bars) against mean cost per item; the front as a step line, the choice marked."""
    field = doc["objective_field"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    points = doc["front"]
    for p in points:
        lo, hi = p["accuracy_ci"] or [p["accuracy"], p["accuracy"]]
        x, y = p["objective_cost"], p["accuracy"]
        ax.errorbar([x], [y], yerr=[[max(0.0, y - lo)], [max(0.0, hi - y)]], fmt="o",
                    color="tab:red" if p["on_front"] else "tab:blue", ms=5, capsize=2, alpha=0.8, zorder=2)
    front = sorted((p["objective_cost"], p["accuracy"]) for p in points if p["on_front"])
    if len(front) > 1:
        ax.step([f[0] for f in front], [f[1] for f in front], where="post", color="tab:red", alpha=0.5,
                label="Pareto front")
    chosen = [p for p in points if p["chosen"]]
    if chosen:
        ax.scatter([chosen[0]["objective_cost"]], [chosen[0]["accuracy"]], marker="*", s=320, color="gold",
                   edgecolors="black", zorder=4, label="chosen")
    if front or chosen:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"mean {field.replace('_per_item', '').replace('_', ' ')} per item")
    ax.set_ylabel("dev accuracy (95% CI)")
    ax.set_title("Accuracy vs cost on the dev split")
    ax.grid(alpha=0.3)
    return png(fig)


def plot_history(doc: Mapping[str, Any]) -> str:
    """Each trial's accuracy (as far as it ran) by trial number, coloured by what became of it."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for state, color in _STATE_COLORS.items():
        trials = [t for t in doc["trials"] if t["state"] == state]
        if not trials:
            continue
        ys = [t["accuracy"] if t["accuracy"] is not None else 0.0 for t in trials]
        ax.scatter([t["number"] for t in trials], ys, color=color, label=state, s=30, zorder=3)
    best, line = -1.0, []
    for t in sorted(doc["trials"], key=lambda t: t["number"]):
        if t["state"] == "complete" and t["accuracy"] is not None:
            best = max(best, t["accuracy"])
        line.append((t["number"], best if best >= 0 else None))
    shown = [(x, y) for x, y in line if y is not None]
    if shown:
        ax.step([x for x, _ in shown], [y for _, y in shown], where="post", color="black", alpha=0.4,
                label="best complete so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("accuracy on the items it ran")
    ax.set_title("Trial history")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def render_report(doc: Mapping[str, Any]) -> str:
    """Render the report from the ``tune.json`` document.

    Returns:
        A self-contained HTML page (plots are embedded PNGs).
    """
    field = doc["objective_field"]
    front = [
        {
            "config": _config(p),
            "items": p["items"],
            "accuracy": f"{p['accuracy']:.3f}",
            "ci": _ci(p["accuracy_ci"]),
            "cost": _num(p["objective_cost"]),
            "on_front": "★" if p["on_front"] else "",
            "chosen": "◆" if p["chosen"] else "",
        }
        for p in doc["front"]
    ]
    trials = [
        {
            "number": t["number"],
            "config": t["config"],
            "state": t["state"],
            "items": t["items"],
            "accuracy": "-" if t["accuracy"] is None else f"{t['accuracy']:.3f}",
            "cost": _num(t["cost"]),
            "reason": t["reason"] or "",
        }
        for t in doc["trials"]
    ]
    plots = [
        {"id": "front", "title": "Dev-split front (★ chosen)", "png": plot_front(doc)},
        {"id": "history", "title": "Trial history", "png": plot_history(doc)},
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        meta={k: v for k, v in doc["meta"].items() if v not in (None, [])},
        chosen=_chosen(doc.get("chosen")),
        plots=plots,
        front=front,
        trials=trials,
        cost_name=field.replace("_", " "),
    )


def _chosen(chosen: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not chosen:
        return None
    dev = chosen["dev"]
    out: dict[str, Any] = {
        "config": chosen["config"],
        "dev_line": f"{dev['accuracy']:.3f} {_ci(dev['accuracy_ci'])} on {dev['items']} items",
        "test_line": None,
        "paired_line": None,
        "baseline": None,
        "reproduce": chosen.get("reproduce"),
    }
    tested = chosen.get("test")
    if tested:
        s = tested["summary"]
        out["test_line"] = f"{s['accuracy']:.3f} {_ci(s['accuracy_ci'])} on {s['items']} items"
        pair, base = tested.get("paired"), tested.get("baseline")
        if pair and base:
            out["baseline"] = base["recipe"]
            lo, hi = pair["gain_ci"]
            out["paired_line"] = (f"gain {pair['gain']:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired bootstrap), "
                                  f"{pair['wins']} items won, {pair['losses']} lost, sign test p={pair['p_value']:.3g}")
    return out


def _config(point: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(point["searched"].items()))
    return f"{point['recipe']}({shown})" if shown else str(point["recipe"])


def _ci(ci: Any) -> str:
    return "-" if not ci or ci[0] is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"
