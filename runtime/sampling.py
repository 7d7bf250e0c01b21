"""Per-sequence sampling: llama.cpp sampler chains, stop strings, token log-probabilities."""

from __future__ import annotations

import codecs
import ctypes
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from sfdsl.errors import BackendError
from sfdsl.log import get_logger

log = get_logger(__name__)

__all__ = ["GrammarRowSampler", "RowSampler", "SamplingParams", "Scratch", "TextStream", "build_sampler",
           "draw_index", "free_sampler", "log_softmax_row", "logits_row", "make_sampler"]
EAGER_GRAMMAR_ENV = "SFDSL_EAGER_GRAMMAR"  # "1": grammar-first llama.cpp chains (a benchmark baseline)
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data
DRAW_BLOCK = 256  # tokens per block of the two-level inverse-CDF draw
SAFE_EXP = 80.0  # float32 exp stays finite and normal below e^88: within +-80 no shift by the maximum is needed


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How one request samples; ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    grammar: str | None = None  # GBNF, root rule "root"

    def seed_for(self, index: int) -> int:
        """Sample ``index`` uses ``seed + index``; unseeded samples get llama.cpp's random seed."""
        if self.seed is None:
            return 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: random
        return (self.seed + index) & 0xFFFFFFFF


def build_sampler(lib: ModuleType, vocab: Any, params: SamplingParams, *, index: int) -> Any:
    """A llama sampler chain for one sequence: [grammar] -> greedy | top_k, top_p, temp, dist.

    The grammar sampler runs first so the later stages only ever see tokens the
    grammar allows; ``llama_sampler_sample`` accepts the chosen token into
    every stage, which advances the grammar. The engine samples grammar requests
    with the lazier :class:`GrammarRowSampler`; this eager order is what
    ``SFDSL_EAGER_GRAMMAR=1`` selects (a benchmark baseline).
    """
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    if not chain:
        raise BackendError("llama.cpp could not allocate a sampler chain")
    try:
        if params.grammar is not None:
            grammar = lib.llama_sampler_init_grammar(vocab, params.grammar.encode("utf-8"), b"root")
            if not grammar:
                raise BackendError(f"llama.cpp rejected the grammar (invalid GBNF?):\n{params.grammar}")
            lib.llama_sampler_chain_add(chain, grammar)
        if params.temperature <= 0.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(params.seed_for(index)))
    except BaseException:
        lib.llama_sampler_free(chain)
        raise
    return chain


class RowSampler:
    """Samples one sequence from a logits row in numpy: greedy, or top_k/top_p/temperature then a seeded draw.

    Used instead of a llama.cpp sampler chain when there is no grammar: the chain
    copies and sorts the whole vocabulary through ctypes for every token (~2 ms on
    SmolLM2's 49k vocabulary); this needs one exp and a two-level draw (:func:`draw_index`). Each
    sequence owns its generator, seeded like the chain (``seed + index``), and
    only reads its own row, so its samples do not depend on the batch.
    """

    def __init__(self, params: SamplingParams, *, index: int, scratch: Scratch | None = None) -> None:
        self.params = params
        seed = None if params.seed is None else params.seed_for(index)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._scratch = scratch or Scratch()

    @staticmethod
    def eligible(params: SamplingParams) -> bool:
        return params.grammar is None

    def sample(self, row: np.ndarray) -> int:
        """A token id drawn from ``row`` (float32 logits; not modified). float32 throughout: 2x faster."""
        p = self.params
        if p.temperature <= 0.0:
            return int(row.argmax())
        buf, starts = self._scratch.for_size(row.size)
        scale = np.float32(1.0 / p.temperature)
        top = float(row.max()) * float(scale)
        x = np.multiply(row, scale, out=buf)
        if 0 < p.top_k < x.size:
            x[x < np.partition(x, -p.top_k)[-p.top_k]] = -np.inf
        if not -SAFE_EXP < top < SAFE_EXP:  # exp(x) could overflow (or all underflow): shift by the maximum
            x -= np.float32(top)
        probs = np.exp(x, out=x)
        if p.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            cum = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(cum, p.top_p * cum[-1])) + 1]
            kept = np.zeros_like(probs)
            kept[keep] = probs[keep]
            probs = kept
        return draw_index(probs, self._rng.random(), starts=starts)


class GrammarRowSampler(RowSampler):
    """A :class:`RowSampler` under a GBNF grammar that checks only the token it drew (llama.cpp's lazy order).

    The grammar-first chain of :func:`build_sampler` runs the grammar over the whole
    vocabulary for every token. This follows ``common_sampler_sample`` with
    ``grammar_first = false``: draw from the unconstrained row, ask the grammar about
    that one token, and only if it is rejected mask the row with one full-vocabulary
    grammar pass and draw again from the masked row with the same sampler.

    For greedy and plain temperature sampling the lazy draw has the eager distribution:
    the grammar gives rejected tokens zero mass, so P(t) = p(t) + (1 - p(A)) p(t) / p(A)
    = p(t) / p(A) for an allowed token t (A: the allowed set). With top_k or top_p the
    truncation sees the whole vocabulary first, as in llama.cpp. Seeded runs repeat: the
    draws come from this sequence's own generator, one per try.
    """

    def __init__(self, lib: ModuleType, vocab: Any, params: SamplingParams, *, index: int,
                 scratch: Scratch | None = None) -> None:
        if params.grammar is None:
            raise ValueError("GrammarRowSampler needs SamplingParams.grammar")
        super().__init__(params, index=index, scratch=scratch)
        self._lib = lib
        self._grammar = lib.llama_sampler_init_grammar(vocab, params.grammar.encode("utf-8"), b"root")
        if not self._grammar:
            raise BackendError(f"llama.cpp rejected the grammar (invalid GBNF?):\n{params.grammar}")
        self._one = lib.llama_token_data(0, 0.0, 0.0)
        self._one_array = lib.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
        self.tokens = 0  # tokens sampled
        self.full_passes = 0  # full-vocabulary grammar passes (one per rejected draw)

    @staticmethod
    def eligible(params: SamplingParams) -> bool:
        return params.grammar is not None

    def sample(self, row: np.ndarray) -> int:
        """A token the grammar allows, drawn from ``row`` (not modified), and accepted into the grammar."""
        token = super().sample(row)
        if not self._allows(token):
            token = super().sample(self._masked(row))
        self._lib.llama_sampler_accept(self._grammar, token)
        self.tokens += 1
        return token

    def _allows(self, token: int) -> bool:
        self._one.id, self._one.logit, self._one.p = token, 0.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return bool(np.isfinite(self._one.logit))

    def _masked(self, row: np.ndarray) -> np.ndarray:
        """The logits with every token the grammar rejects at -inf: one pass over the vocabulary, in C."""
        self.full_passes += 1
        cand = self._scratch.candidates(row)
        array = self._lib.llama_token_data_array(
            cand.ctypes.data_as(ctypes.POINTER(self._lib.llama_token_data)), cand.size, -1, False)
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(array))
        masked: np.ndarray = cand["logit"]
        if not np.isfinite(masked.max()):
            raise BackendError("the grammar allows no next token (a grammar that cannot finish?)")
        return masked

    def free(self) -> None:
        """Free the llama.cpp grammar; idempotent. Logs how often the full pass ran (debug)."""
        if self._grammar:
            log.debug("grammar_sampling_finished", tokens=self.tokens, full_passes=self.full_passes)
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None


def make_sampler(lib: ModuleType, vocab: Any, params: SamplingParams, *, index: int, scratch: Scratch) -> Any:
    """The sampler of sample ``index``: a RowSampler, a lazy GrammarRowSampler, or (env switch) a llama.cpp chain.

    ``SFDSL_EAGER_GRAMMAR=1`` in the environment selects the grammar-first chain of
    :func:`build_sampler` for grammar requests; ``benchmarks/bench_agent.py`` uses it
    to compare the two orders in one run. Free the result with :func:`free_sampler`.
    """
    if RowSampler.eligible(params):
        return RowSampler(params, index=index, scratch=scratch)
    if os.environ.get(EAGER_GRAMMAR_ENV) == "1":
        return build_sampler(lib, vocab, params, index=index)
    return GrammarRowSampler(lib, vocab, params, index=index, scratch=scratch)


def free_sampler(lib: ModuleType, sampler: Any) -> None:
    """Release what :func:`make_sampler` allocated in llama.cpp (nothing for a plain RowSampler)."""
    if isinstance(sampler, GrammarRowSampler):
        sampler.free()
    elif sampler is not None and not isinstance(sampler, RowSampler):
        lib.llama_sampler_free(sampler)


class Scratch:
    """A float32 work row and the draw's block starts, shared by the samplers of one job.

    One row for all: a fresh 200 KB array per token costs page faults, and one per
    sequence falls out of the CPU cache (the samplers run one after another).
    """

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.float32)
        self._starts = np.empty(0, dtype=np.intp)
        self._cand = np.empty(0, dtype=TOKEN_DATA)

    def for_size(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._buf.size != size:
            self._buf = np.empty(size, dtype=np.float32)
            self._starts = np.arange(0, size, DRAW_BLOCK)
        return self._buf, self._starts

    def candidates(self, row: np.ndarray) -> np.ndarray:
        """A llama_token_data array (id, logit, p) of ``row``, ids in order: what a full grammar pass reads."""
        if self._cand.size != row.size:  # a grammar pass only sets logits to -inf: the ids stay in place
            self._cand = np.zeros(row.size, dtype=TOKEN_DATA)
            self._cand["id"] = np.arange(row.size, dtype=np.int32)
        self._cand["logit"] = row
        return self._cand


def draw_index(probs: np.ndarray, u: float, *, block: int = DRAW_BLOCK, starts: np.ndarray | None = None) -> int:
    """The index where ``u`` (in [0, 1)) falls in the cumulative sum of ``probs`` (unnormalised, >= 0).

    Two levels: block sums, then a cumulative sum inside the one block the draw falls in.
    A full-vocabulary ``cumsum`` is sequential and took 115 us of a 178 us draw on 49k tokens.
    Never returns an index whose weight is 0.
    """
    if starts is None:
        starts = np.arange(0, probs.size, block)
    cum_blocks = np.cumsum(np.add.reduceat(probs, starts), dtype=np.float64)
    target = u * cum_blocks[-1]
    b = min(int(np.searchsorted(cum_blocks, target, side="right")), starts.size - 1)
    inside = probs[starts[b] : starts[b] + block]
    within = target - (cum_blocks[b - 1] if b else 0.0)
    j = int(np.searchsorted(np.cumsum(inside, dtype=np.float64), within, side="right"))
    if j >= inside.size or inside[j] <= 0:  # rounding ran past the block's end: its last weighted token
        j = int(np.flatnonzero(inside)[-1])
    return int(starts[b]) + j


def logits_row(lib: ModuleType, ctx: Any, index: int, n_vocab: int) -> np.ndarray:
    """A float32 view of the logits at batch output ``index``; the next decode overwrites it, so read it first."""
    ptr = lib.llama_get_logits_ith(ctx, index)
    if not ptr:
        raise BackendError(f"llama.cpp returned no logits for batch index {index}")
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,))


def log_softmax(row: np.ndarray) -> np.ndarray:
    """The log-softmax of a logits row, as a new float64 array."""
    row = row.astype(np.float64)
    top = row.max()
    return row - (top + np.log(np.exp(row - top).sum()))


def log_softmax_row(lib: ModuleType, ctx: Any, index: int, n_vocab: int) -> np.ndarray:
    """A copy of the log-softmax of the logits at batch output ``index`` (float64).

    Copies at once: llama.cpp reuses the logits buffer on the next decode.
    """
    ptr = lib.llama_get_logits_ith(ctx, index)
    if not ptr:
        raise BackendError(f"llama.cpp returned no logits for batch index {index}")
    row = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)
    top = row.max()
    row -= top + np.log(np.exp(row - top).sum())
    return row


class TextStream:
    """Incremental UTF-8 text of one sequence, cut at the first stop string."""

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=0)
        self.text = ""

    def push(self, piece: bytes) -> bool:
        """Append a token's bytes; True when a stop string appeared (the text is cut before it)."""
        before = len(self.text)
        self.text += self._decoder.decode(piece)
        if not self._stops or len(self.text) == before:
            return False
        start = max(0, before - self._hold + 1)
        hits = [i for i in (self.text.find(s, start) for s in self._stops) if i >= 0]
        if not hits:
            return False
        self.text = self.text[: min(hits)]
        return True

    def close(self) -> str:
        """Flush any incomplete UTF-8 sequence and return the final text."""
        self.text += self._decoder.decode(b"", final=True)
        return self.text
