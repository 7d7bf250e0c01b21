"""The HTML report: self-contained plots and tables, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sfdsl.eval.metrics import compare, summarize
from sfdsl.eval.report import write_report
from sfdsl.eval.store import ItemRecord

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
PROBE = (
    "<script>window.addEventListener('load', () => { document.body.dataset.imgs = "
    "[...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(','); });</script>"
)


def _records(label: str, n: int, *, acc_every: int, tokens: int) -> list[ItemRecord]:
    out = []
    for i in range(n):
        ok = i % acc_every != 0
        out.append(
            ItemRecord(
                run_key=label,
                item_key=f"k{i}",
                sample=0,
                item_id=str(i),
                item_index=i,
                recipe=label,
                inputs={"q": i},
                gold="g",
                answer="a",
                outputs={},
                correct=ok and i % 7 != 0,
                answer_correct=ok,
                first_correct=(i % 3 != 0),
                score=(0.9 if ok else 0.3) - (i % 5) * 0.05,
                abstained=i % 7 == 0,
                calls=1,
                prompt_tokens=tokens,
                completion_tokens=5,
                cached_calls=0,
                wall_s=0.1,
                seed=0,
                error="backend <down>" if i == n - 1 else None,
                error_kind="BackendError" if i == n - 1 else None,
            )
        )
    return out


@pytest.fixture
def report(tmp_path: Path) -> Path:
    summaries = [
        ("base", summarize(_records("base", 40, acc_every=2, tokens=20), n_boot=100)),
        ("self-consistency", summarize(_records("sc", 40, acc_every=4, tokens=100), n_boot=100)),
        ("refine", summarize(_records("refine", 40, acc_every=3, tokens=150), n_boot=100)),
    ]
    failures = {"base": [{"item_id": "39", "sample": 0, "kind": "BackendError", "error": "backend <down>"}]}
    return write_report(
        tmp_path / "report.html", summaries, compare(summaries), meta={"data": "x.jsonl"}, failures=failures
    )


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.tables: list[dict[str, str | None]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "table":
            self.tables.append(a)
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append(a.get("src") or a.get("href") or "")


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text()
    p = _Collect()
    p.feed(html)
    assert len(p.imgs) == 3 and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    assert not p.external
    assert any(t.get("id") == "comparison" for t in p.tables)
    assert "backend &lt;down&gt;" in html  # escaped
    assert "Two-turn" in html and "Calibration" in html and "Selective answering" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    sizes = re.search(r'data-imgs="([^"]*)"', dom)
    assert sizes, f"probe did not run; DOM was: {dom[:500]}"
    dims = [tuple(map(int, s.split("x"))) for s in sizes.group(1).split(",")]
    assert len(dims) == 3 and all(w > 100 and h > 100 for w, h in dims)  # every PNG decoded
    assert dom.count('src="data:image/png;base64,') == 3
    assert '<table id="comparison">' in dom and dom.count('class="summary"') >= 9
    for label in ("base", "self-consistency", "refine"):
        assert f"<h2>{label}</h2>" in dom
