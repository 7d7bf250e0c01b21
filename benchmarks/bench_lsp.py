"""Benchmark: how long after a change `sfrun lsp` publishes the diagnostics of a 2,000-line file.

The file is the shipped recipes, repeated with renamed recipes until it has ``--lines`` lines. The real
server runs in a child process over stdio (as an editor runs it); each round changes one line (a typo that
makes an error, then its fix) and times the change notification → publishDiagnostics of that version.
The debounce (sfdsl/lsp/server.py DEBOUNCE_S) is included. Also the time of one in-process analysis.
Target: 300 ms. Run: ``python benchmarks/bench_lsp.py`` (``--rounds 10``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from sfdsl.lsp.analysis import analyze

REPO = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-c", "from sfdsl.cli import main; raise SystemExit(main(['lsp']))"]


def big_file(lines: int) -> str:
    """Shipped recipes, renamed copy by copy, until the text has ``lines`` lines."""
    sources = [p.read_text(encoding="utf-8") for p in sorted((REPO / "recipes").glob("*.sf"))]
    sources = [s for s in sources if "import " not in s and "call " not in s]
    parts: list[str] = []
    copy = 0
    while sum(p.count("\n") for p in parts) < lines:
        text = sources[copy % len(sources)]
        parts.append(text.replace("recipe ", f"recipe c{copy}_"))
        copy += 1
    return "\n".join(parts)


async def measure(text: str, rounds: int) -> list[float]:
    client = LanguageClient("bench-lsp", "1")
    published: dict[int, float] = {}
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        if params.version is not None:
            published[params.version] = time.perf_counter()
            arrived.set()

    await client.start_io(*SERVER)
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = (REPO / "benchmarks" / "bench_lsp_big.sf").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="sf", version=1, text=text)))
    await asyncio.wait_for(arrived.wait(), 120)
    line = next(i for i, row in enumerate(text.splitlines()) if row.strip().startswith("v = vote"))
    row = text.splitlines()[line]
    timings = []
    for version in range(2, rounds + 2):
        edited = row.replace("vote", "vote") if version % 2 else row.replace("answers", "answerz")
        arrived.clear()
        sent = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=line, character=0),
                                  end=types.Position(line=line, character=len(row))), text=edited)]))
        row = edited
        while version not in published:
            await asyncio.wait_for(arrived.wait(), 120)
            arrived.clear()
        timings.append(published[version] - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    text = big_file(args.lines)
    start = time.perf_counter()
    analysis = analyze(text, str(REPO / "benchmarks" / "bench_lsp_big.sf"))
    once = time.perf_counter() - start
    print(f"file: {text.count(chr(10)) + 1} lines, {len(analysis.module.recipes if analysis.module else [])} recipes")
    print(f"in-process analysis: {once * 1000:.0f} ms")
    timings = asyncio.run(measure(text, args.rounds))
    print("change → diagnostics (ms): " + ", ".join(f"{t * 1000:.0f}" for t in timings))
    print(f"median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms (target 300 ms)")


if __name__ == "__main__":
    main()
