"""Plain table data for eval summaries, and printing them with rich."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

Rows = list[tuple[str, ...]]

COMPARISON_HEADERS = [
    "#",
    "recipe",
    "accuracy",
    "95% CI",
    "gain",
    "gain 95% CI",
    "wins/losses (p)",
    "tokens/item",
    "cost ×",
    "acc/1k tok",
    "rank",
    "pareto",
]


def fmt(value: Any, kind: str = "num") -> str:
    """Format a metric value: ``pct`` (percent), ``pts`` (signed points), ``int``, ``x`` (multiple) or ``num``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "pts":
        return f"{value * 100:+.1f} pts"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "x":
        return f"{value:.2f}×"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def ci_text(ci: Sequence[float] | None) -> str:
    """``[lo, hi]`` as percentages."""
    if not ci or any(v is None or math.isnan(v) for v in ci):
        return "–"
    return f"[{ci[0]:.1%}, {ci[1]:.1%}]"


def points(value: float) -> str:
    """A rate difference in signed points to one decimal, never "-0.0": ``+2.5``."""
    return f"{round(value * 100, 1) + 0.0:+.1f}"


def gain_ci_text(ci: Sequence[float] | None) -> str:
    """A paired gain CI ``[lo, hi]`` in signed points."""
    if not ci or any(v is None or math.isnan(v) for v in ci):
        return "–"
    return f"[{points(ci[0])}, {points(ci[1])}] pts"


def wins_text(row: Mapping[str, Any]) -> str:
    """Items won and lost against the baseline, with the sign test's p-value: ``5/1 (p=0.22)``."""
    if row.get("wins") is None:
        return "–"
    return f"{row['wins']}/{row['losses']} (p={row['p_value']:.2g})"


def summary_sections(s: Mapping[str, Any]) -> dict[str, Rows]:
    """One recipe's summary as titled sections of (metric, value...) rows.

    Most sections have two columns; the before/after section is a 2x2 grid
    whose first row is its column header.
    """
    cost = s["cost"]
    fail = s["failures"]
    sections: dict[str, Rows] = {
        "Accuracy": [
            ("items", fmt(s["items"], "int")),
            ("samples", fmt(s["samples"], "int")),
            ("accuracy", fmt(s["accuracy"], "pct")),
            ("95% CI (bootstrap)", ci_text(s["accuracy_ci"])),
            (
                "failed",
                fmt(fail["count"], "int")
                + (
                    " (" + ", ".join(f"{k}: {v}" for k, v in sorted(fail["by_kind"].items())) + ")"
                    if fail["count"]
                    else ""
                ),
            ),
        ],
        "Cost": [
            ("calls / item", fmt(cost["calls_per_item"])),
            ("prompt tokens / item", fmt(cost["prompt_tokens_per_item"])),
            ("completion tokens / item", fmt(cost["completion_tokens_per_item"])),
            ("tokens / item", fmt(cost["tokens_per_item"])),
            ("wall s / item", fmt(cost["wall_s_per_item"])),
            ("total tokens", fmt(cost["total_tokens"], "int")),
            ("tokens / correct answer", fmt(cost["tokens_per_correct"])),
        ],
    }
    if "selective" in s:
        sel = s["selective"]
        sections["Selective answering"] = [
            ("coverage", fmt(sel["coverage"], "pct")),
            ("selective accuracy", fmt(sel["selective_accuracy"], "pct")),
            ("abstained", fmt(sel["abstained"], "int")),
            (f"AURC (by {sel['curve_basis']})", fmt(sel["aurc"])),
            ("AURC of a random order", fmt(sel.get("aurc_random"))),
        ]
    if "calibration" in s:
        cal = s["calibration"]
        sections["Calibration"] = (
            [("skipped", cal["skipped"])]
            if "skipped" in cal
            else [("scored items", fmt(cal["n"], "int")), ("ECE", fmt(cal["ece"])), ("Brier", fmt(cal["brier"]))]
        )
    if "two_turn" in s:
        t = s["two_turn"]
        table = t["table"]
        sections["Two-turn (Confidence v.s. Critique)"] = [
            ("Acc1 (first turn)", fmt(t["acc1"], "pct")),
            ("Acc2 (second turn)", fmt(t["acc2"], "pct")),
            ("CL (keeps right)", fmt(t["cl"], "pct")),
            ("CS (fixes wrong)", fmt(t["cs"], "pct")),
            ("RSS", fmt(t["rss"])),
        ]
        sections["Before/after (first turn vs final answer)"] = [
            ("", "final right", "final wrong"),
            ("first right", fmt(table["right->right"], "int"), fmt(table["right->wrong"], "int")),
            ("first wrong", fmt(table["wrong->right"], "int"), fmt(table["wrong->wrong"], "int")),
        ]
    return sections


def comparison_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Comparison rows (from ``metrics.compare``) as display strings, in ``COMPARISON_HEADERS`` order."""
    out = []
    for i, r in enumerate(rows):
        out.append(
            [
                str(i + 1) + (" (base)" if i == 0 else ""),
                r["label"],
                fmt(r["accuracy"], "pct"),
                ci_text(r["accuracy_ci"]),
                fmt(r["gain"], "pts") if i else "–",
                gain_ci_text(r.get("gain_ci")) if i else "–",
                wins_text(r) if i else "–",
                fmt(r["tokens_per_item"]),
                fmt(r["cost_multiple"], "x"),
                fmt(r["acc_per_1k_tokens"]),
                str(r["rank"]),
                "★" if r["pareto"] else "",
            ]
        )
    return out


def print_summary(console: Console, label: str, summary: Mapping[str, Any]) -> None:
    """Print one recipe's metric tables."""
    for title, rows in summary_sections(summary).items():
        name = f"{label} — {title}"
        table = Table(title=name, title_justify="left", show_header=False, min_width=len(name) + 2)
        table.add_column("metric", style="bold")
        for _ in range(max(len(r) for r in rows) - 1):
            table.add_column("value", justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def print_comparison(console: Console, rows: Sequence[Mapping[str, Any]]) -> None:
    """Print the multi-recipe comparison table."""
    table = Table(title="Comparison (baseline = first recipe)", title_justify="left")
    for h in COMPARISON_HEADERS:
        table.add_column(h, justify="left" if h == "recipe" else "right")
    for row in comparison_rows(rows):
        table.add_row(*row)
    console.print(table)
