"""The `sfrun tune --report` page: the front plot with the chosen point marked, the trial history, the tables;
rendered in headless Chromium like the eval report."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from test_eval_report import CHROMIUM, PROBE, _Collect
from tune_support import RECIPES, WORDS, SyntheticBackend, make_items, run_tune, write_items

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    rows = make_items(36, seed=4)
    data = write_items(tmp / "d.jsonl", rows)
    out = tmp / "out"
    rc = run_tune([f"{RECIPES / 'self_consistency.sf'}:self_consistency", "--data", str(data), "--space", "n=1..6",
                   "-i", f"max_tokens={WORDS}", "--split", "24:12", "--metric", "numeric", "--trials", "6",
                   "--constraint", "tokens_per_item<=110", "--baseline", "none", "--report", "--out", str(out)],
                  SyntheticBackend(rows))
    assert rc == 0
    return out / "report.html"


def _gold_pixels(png_b64: str) -> int:
    import numpy as np

    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 240) & (g >= 200) & (g <= 225) & (b < 30)).sum())


def test_report_is_self_contained_and_marks_the_choice(report: Path) -> None:
    html = report.read_text()
    p = _Collect()
    p.feed(html)
    assert len(p.imgs) == 2 and all(src.startswith("data:image/png;base64,") for src in p.imgs)
    assert not p.external
    assert {t.get("id") for t in p.tables} >= {"choice", "front", "trials"}
    doc = json.loads((report.parent / "tune.json").read_text())
    assert doc["chosen"]["config"] in html and "◆" in html
    front_png, history_png = (src.split(",", 1)[1] for src in p.imgs)
    assert _gold_pixels(front_png) > 50  # the chosen point's gold star
    assert _gold_pixels(history_png) == 0
    assert html.count("<tr><td>") >= len(doc["trials"])  # one history row per trial


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    sizes = re.search(r'data-imgs="([^"]*)"', dom)
    assert sizes, f"probe did not run; DOM was: {dom[:500]}"
    dims = [tuple(map(int, s.split("x"))) for s in sizes.group(1).split(",")]
    assert len(dims) == 2 and all(w > 100 and h > 100 for w, h in dims)  # both PNGs decoded
    assert '<table id="front">' in dom and '<table id="trials">' in dom and '<table id="choice">' in dom
    assert 'id="plot-front"' in dom and 'id="plot-history"' in dom
