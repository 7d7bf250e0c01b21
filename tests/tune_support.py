"""A synthetic task with a known answer, for the ``sfrun tune`` tests.

Item i is a question whose samples are right with probability p_i, independently (a seeded hash of the
question, the request's seed, its temperature and the sample index decides). A right sample ends "The answer
is {gold}."; a wrong one names a number no other sample names (wrong answers scatter). Every reply is exactly
``WORDS`` words. P(True) scoring reveals p_i (the difficulty is visible to the model's self-evaluation).

With wrong answers all distinct, a majority vote of n samples is right when at least two samples are right,
or exactly one is and it came first (ties go to the answer that reached the tied count first; all answers
then have one vote). So its accuracy is, per item, the binomial tail
``P(K >= 2) + P(K = 1) / n`` with K ~ Binomial(n, p_i), averaged over the items.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

from sfdsl.runtime.backends.base import Backend, Completion, GenerateRequest, ScoreRequest, SequenceScore

WORDS = 20
_FILLER = ("so we add the parts and check the sum again carefully before we state the result " * 3).split()


def vote_accuracy(n: int, p: float) -> float:
    """Exact accuracy of a majority vote of n samples on an item with per-sample accuracy p (see above)."""
    none = (1 - p) ** n
    one = n * p * (1 - p) ** (n - 1)
    return 1 - none - one + one / n


def analytic_curve(ps: list[float], n: int) -> float:
    """Expected vote accuracy over items with these p_i."""
    return sum(vote_accuracy(n, p) for p in ps) / len(ps)


def make_items(count: int, *, seed: int, mixture: bool = False) -> list[dict[str, Any]]:
    """Rows ``{id, question, answer, p}``: p ~ U(0.05, 0.75), or (``mixture``) alternately an easy item,
    p ~ U(0.95, 1), and a hard one, p ~ U(0.2, 0.5)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        easy = i % 2 == 0
        p = (rng.uniform(0.95, 1.0) if easy else rng.uniform(0.2, 0.5)) if mixture else rng.uniform(0.05, 0.75)
        rows.append({"id": f"s{i:04d}", "question": f"synthetic question number {i:04d} p={p:.6f}",
                     "answer": 100 + i, "p": p})
    return rows


def write_items(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _uniform(*parts: Any) -> float:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SyntheticBackend(Backend):
    """Answers every generation as the synthetic task says; counts the requests and samples it serves."""

    def __init__(self, rows: list[dict[str, Any]], *, words: int = WORDS, latency: float = 0.0,
                 log: Path | None = None) -> None:
        self._by_question = {r["question"]: r for r in rows}
        self.words = words
        self._latency, self._log = latency, log
        self.model_id = "synthetic"
        self.context_tokens = None
        self.generate_calls = 0
        self.samples = 0
        self.score_calls = 0

    def _row(self, text: str) -> dict[str, Any]:
        for question, row in self._by_question.items():
            if question in text:
                return row
        raise KeyError(f"no synthetic question in prompt {text[:80]!r}")

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        text = request.prompt.canonical()
        row = self._row(text)
        self.generate_calls += 1
        self.samples += request.n
        if self._log is not None:
            with self._log.open("a") as f:
                f.write(f"{row['id']} n={request.n}\n")
        if self._latency:
            await asyncio.sleep(self._latency)
        out = []
        for i in range(request.n):
            u = _uniform(row["question"], request.seed, request.temperature, text[-40:], i)
            right = u < row["p"]
            answer = row["answer"] if right else 1_000_000 + int(_uniform("wrong", u) * 10**9)
            words = [*(_FILLER * 8)[: self.words - 4], "The", "answer", "is", f"{answer}."]
            reply = " ".join(words[: request.max_tokens])
            out.append(Completion(text=reply, completion_tokens=min(self.words, request.max_tokens),
                                  prompt_tokens=len(text.split()), finish_reason="stop", index=i))
        return out

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        row = self._row(request.prompt.canonical())
        self.score_calls += 1
        p = min(max(row["p"], 1e-6), 1 - 1e-6)
        prompt = len(request.prompt.canonical().split())  # the prompt is read once for all continuations
        return [SequenceScore(token_logprobs=[math.log(p) if c == " (A)" else math.log(1 - p)],
                              prompt_tokens=prompt if i == 0 else 0)
                for i, c in enumerate(request.continuations)]


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def tune_parser(backend: Any = None) -> Any:
    """An ``sfrun``-like parser with only ``tune``, whose runs use ``backend`` for every model."""
    import argparse

    from sfdsl.tune.cli import add_tune_parser

    parser = argparse.ArgumentParser(prog="sfrun")
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_tune_parser(sub, make_backend=(lambda args: backend) if backend is not None else None)
    p.add_argument("--import-path", action="append", default=[])
    return parser


def run_tune(argv: list[str], backend: Any) -> int:
    """Run ``sfrun tune ARGV`` in this process on ``backend``; returns the exit code."""
    args = tune_parser(backend).parse_args(["tune", *argv])
    return int(args.func(args))
