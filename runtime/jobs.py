"""Engine jobs: per-request state machines that add tokens to a batch and read its outputs.

A job is scheduled once per engine step: ``schedule`` adds tokens to the
batch without changing the job, and returns a ``commit`` callback that runs
only if ``llama_decode`` succeeds; it reads the logits at once (the buffer is
reused by the next decode) and advances the job. So a failed decode can be
retried without undoing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sfdsl.runtime.kv import SeqPool, TokenBatch
from sfdsl.runtime.llama_lib import LoadedModel
from sfdsl.runtime.sampling import (
    RowSampler,
    SamplingParams,
    Scratch,
    TextStream,
    free_sampler,
    log_softmax,
    log_softmax_row,
    logits_row,
    make_sampler,
)
from sfdsl.runtime.token_stream import TextDeltas

__all__ = ["GenJob", "GenResult", "Job", "Reply", "ScoreJob"]

Finish = Literal["stop", "length", "eos"]
Commit = Callable[[], None]


class Reply:
    """The worker thread's handle on an asyncio future owned by the caller's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self._loop = loop
        self._future = future
        self.cancelled = False
        future.add_done_callback(self._on_done)

    def _on_done(self, future: asyncio.Future[Any]) -> None:
        self.cancelled = future.cancelled()

    def resolve(self, value: Any) -> None:
        self._post(self._set_result, value)

    def fail(self, exc: BaseException) -> None:
        self._post(self._set_exception, exc)

    def notify(self, fn: Callable[[str], None], text: str) -> None:
        """Call ``fn(text)`` in the caller's loop (e.g. to stream a piece of generated text)."""
        if not self.cancelled:
            self._post(fn, text)

    def _post(self, fn: Callable[[Any], None], arg: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed; nobody is waiting
            self._loop.call_soon_threadsafe(fn, arg)

    def _set_result(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def _set_exception(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)


@dataclass(frozen=True)
class GenResult:
    """One finished sample."""

    text: str
    completion_tokens: int
    finish_reason: Finish
    logprobs: list[float] | None
    cached_prompt_tokens: int = 0  # prompt tokens whose KV cells came from the prefix cache


@dataclass(eq=False)
class _Seq:
    index: int
    seq_id: int
    sampler: Any
    stream: TextStream
    pos: int = 0
    pending: int = -1
    generated: int = 0
    tokens: list[int] = field(default_factory=list)  # generated tokens already decoded into the KV cells
    logprobs: list[float] | None = None
    result: GenResult | None = None


class Job:
    """Common state: the reply, the prompt being prefilled into the first sequence.

    ``arrival`` orders jobs first come, first served (a preempted job keeps its place);
    ``cached`` counts prompt tokens whose KV cells came from the prefix cache, not a decode.
    """

    def __init__(self, *, prompt: list[int], reply: Reply, n_seqs: int) -> None:
        self.prompt = prompt
        self.reply = reply
        self.n_seqs = n_seqs
        self.seq_ids: list[int] = []
        self.fed = 0
        self.cached = 0
        self.arrival = 0
        self.preemptions = 0
        self.peak = 0  # most KV cells held before a preemption: what readmission waits for
        self.done = False

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)

    @property
    def remaining_prompt(self) -> int:
        return len(self.prompt) - self.fed

    def kv_used(self) -> int:
        """KV cells this job added (prompt cells are shared by its sequences; cached ones the cache counts)."""
        return 0 if self.done else self.fed - self.cached

    def future_cells(self) -> int:
        """Most KV cells the job may still add (what a batch-invariant engine reserves for it)."""
        return self.remaining_prompt

    def admit_need(self) -> int:
        """KV cells the job needs to start: its prompt and first tokens, or what it held before a preemption."""
        return max(len(self.prompt) + self.n_seqs, self.peak)

    def bind(self, seq_ids: list[int], model: LoadedModel) -> None:
        """Take ownership of the sequence ids the engine acquired for this job."""
        self.seq_ids = seq_ids

    def start_at(self, n_cached: int) -> None:
        """The first ``n_cached`` prompt tokens are already in the first sequence's cells."""
        self.fed = self.cached = n_cached

    def schedule(self, batch: TokenBatch, model: LoadedModel, pool: SeqPool, limit: int) -> Commit | None:
        """Add this step's tokens (at most ``limit`` prompt tokens) to ``batch``; the commit to run after decoding."""
        raise NotImplementedError

    def preempt(self, pool: SeqPool, model: LoadedModel) -> None:
        """Free every sequence and go back to the prompt; finished results are kept."""
        self.peak = max(self.peak, self.kv_used())
        self.release(pool, model)
        self.fed = self.cached = 0
        self.preemptions += 1

    def release(self, pool: SeqPool, model: LoadedModel) -> None:
        """Give back every sequence (and sampler) still held; idempotent."""
        for sid in self.seq_ids:
            pool.release(sid)
        self.seq_ids = []

    def _prefill(self, batch: TokenBatch, limit: int) -> tuple[int, int]:
        """Add the next prompt chunk; returns (tokens added, batch index of the last prompt token or -1)."""
        take = min(batch.room, limit, len(self.prompt) - self.fed)
        last = -1
        sid = self.seq_ids[0]
        end = len(self.prompt)
        for pos in range(self.fed, self.fed + take):
            idx = batch.add(self.prompt[pos], pos, sid, logits=pos == end - 1)
            if pos == end - 1:
                last = idx
        return take, last


class GenJob(Job):
    """``n`` samples of one prompt: prefill once, copy the KV cells, decode ``n`` sequences.

    Sample ``i`` always uses the sampler seed for index ``i``, so after a preemption the
    unfinished samples restart from the prompt and yield the same tokens again.
    """

    def __init__(
        self,
        *,
        prompt: list[int],
        reply: Reply,
        n: int,
        sampling: SamplingParams,
        max_tokens: int,
        stop: tuple[str, ...],
        logprobs: bool,
        n_ctx_seq: int,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(prompt=prompt, reply=reply, n_seqs=n)
        hold = max((len(s) for s in stop if s), default=1) - 1
        self.deltas = None if on_text is None else TextDeltas(lambda piece: reply.notify(on_text, piece), hold=hold)
        self.n = n
        self.sampling = sampling
        self.max_tokens = max_tokens
        self.stop = stop
        self.want_logprobs = logprobs
        self.n_ctx_seq = n_ctx_seq
        self.seqs: list[_Seq] = []
        self.results: dict[int, GenResult] = {}

    def kv_used(self) -> int:
        return super().kv_used() + sum(s.pos - len(self.prompt) for s in self.seqs if s.result is None and s.pos)

    def future_cells(self) -> int:
        """The rest of the prompt, and every unfinished sample's tokens up to ``max_tokens`` (or the context)."""
        start = len(self.prompt)
        if not self.seqs:  # waiting (or preempted): every unfinished sample is still to come
            todo = self.n - len(self.results)
            return self.remaining_prompt + todo * max(0, min(self.max_tokens, self.n_ctx_seq - start))
        left = (min(self.max_tokens - s.generated, self.n_ctx_seq - max(s.pos, start)) for s in self.seqs
                if s.result is None)
        return self.remaining_prompt + sum(max(0, n) for n in left)

    def bind(self, seq_ids: list[int], model: LoadedModel) -> None:
        super().bind(seq_ids, model)
        todo = [i for i in range(self.n) if i not in self.results]
        self.seqs = []
        scratch = Scratch()
        for i, sid in zip(todo, seq_ids):
            sampler = make_sampler(model.lib, model.vocab, self.sampling, index=i, scratch=scratch)
            self.seqs.append(
                _Seq(i, sid, sampler, TextStream(self.stop), logprobs=[] if self.want_logprobs else None)
            )

    def schedule(self, batch: TokenBatch, model: LoadedModel, pool: SeqPool, limit: int) -> Commit | None:
        if self.prefilling:
            take, last = self._prefill(batch, limit)
            if take == 0:
                return None

            def commit_prefill() -> None:
                self.fed += take
                if last >= 0:
                    pool.share(self.seq_ids[0], self.seq_ids[1:])
                    for seq in self.seqs:
                        seq.pos = len(self.prompt)
                        self._sample(seq, last, model, pool)

            return commit_prefill
        live = [s for s in self.seqs if s.result is None][: batch.room]
        if not live:
            return None
        slots = [(seq, batch.add(seq.pending, seq.pos, seq.seq_id, logits=True)) for seq in live]

        def commit_decode() -> None:
            for seq, idx in slots:
                seq.tokens.append(seq.pending)
                seq.pos += 1
                self._sample(seq, idx, model, pool)

        return commit_decode

    def _sample(self, seq: _Seq, idx: int, model: LoadedModel, pool: SeqPool) -> None:
        lib = model.lib
        row = None
        if isinstance(seq.sampler, RowSampler):
            row = logits_row(lib, model.ctx, idx, model.n_vocab)  # read before the next decode
            token = seq.sampler.sample(row)
        else:
            token = int(lib.llama_sampler_sample(seq.sampler, model.ctx, idx))
        if model.is_eog(token):
            self._finish(seq, "eos", model, pool)
            return
        if seq.logprobs is not None:  # one per text token: the end-of-generation token is not counted
            lps = log_softmax(row) if row is not None else log_softmax_row(lib, model.ctx, idx, model.n_vocab)
            seq.logprobs.append(float(lps[token]))
        seq.generated += 1
        if seq.stream.push(model.piece(token)):
            self._finish(seq, "stop", model, pool)
            return
        if self.deltas is not None and seq.index == 0:
            self.deltas.grow(seq.stream.text)
        if seq.generated >= self.max_tokens or seq.pos >= self.n_ctx_seq:
            self._finish(seq, "length", model, pool)
        else:
            seq.pending = token

    def _finish(self, seq: _Seq, reason: Finish, model: LoadedModel, pool: SeqPool) -> None:
        text = seq.stream.text if reason == "stop" else seq.stream.close()
        seq.result = GenResult(text, seq.generated, reason, seq.logprobs, self.cached)
        if self.deltas is not None and seq.index == 0:
            self.deltas.finish(text)
        self.results[seq.index] = seq.result
        self._drop_seq(seq, model, pool, keep=self.prompt + seq.tokens)
        if len(self.results) == self.n:
            self.done = True
            self.reply.resolve([self.results[i] for i in range(self.n)])

    def _drop_seq(self, seq: _Seq, model: LoadedModel, pool: SeqPool, keep: list[int] | None = None) -> None:
        free_sampler(model.lib, seq.sampler)
        seq.sampler = None
        if seq.seq_id in self.seq_ids:
            self.seq_ids.remove(seq.seq_id)
            pool.release(seq.seq_id, keep=keep)

    def preempt(self, pool: SeqPool, model: LoadedModel) -> None:
        super().preempt(pool, model)
        self.seqs = []
        self.n_seqs = self.n - len(self.results)

    def release(self, pool: SeqPool, model: LoadedModel) -> None:
        for seq in self.seqs:
            self._drop_seq(seq, model, pool)
        super().release(pool, model)


@dataclass(eq=False)
class _Cont:
    index: int
    tokens: list[int]
    seq_id: int = -1
    fed: int = 0  # tokens of this continuation already decoded (all but the last are fed)
    logprobs: list[float] = field(default_factory=list)


class ScoreJob(Job):
    """Log-probabilities of several continuations: prefill once, then one sequence per continuation.

    A continuation of one token needs no sequence of its own: the prompt's last
    logits score it. Longer ones get a copy of the prompt's KV cells and are
    decoded with logits at every position.
    """

    def __init__(self, *, prompt: list[int], reply: Reply, continuations: list[list[int]]) -> None:
        self.conts = [_Cont(i, toks) for i, toks in enumerate(continuations)]
        self.multi = [c for c in self.conts if len(c.tokens) >= 2]
        super().__init__(prompt=prompt, reply=reply, n_seqs=max(1, len(self.multi)))

    def kv_used(self) -> int:
        return super().kv_used() + sum(c.fed for c in self.multi)

    def future_cells(self) -> int:
        return super().future_cells() + sum(len(c.tokens) - 1 - c.fed for c in self.multi)

    def bind(self, seq_ids: list[int], model: LoadedModel) -> None:
        super().bind(seq_ids, model)
        for cont, sid in zip(self.multi, seq_ids):
            cont.seq_id = sid

    def preempt(self, pool: SeqPool, model: LoadedModel) -> None:
        super().preempt(pool, model)
        for cont in self.conts:
            cont.fed, cont.logprobs, cont.seq_id = 0, [], -1

    def schedule(self, batch: TokenBatch, model: LoadedModel, pool: SeqPool, limit: int) -> Commit | None:
        lib, ctx, n_vocab = model.lib, model.ctx, model.n_vocab
        if self.prefilling:
            take, last = self._prefill(batch, limit)
            if take == 0:
                return None

            def commit_prefill() -> None:
                self.fed += take
                if last < 0:
                    return
                row = log_softmax_row(lib, ctx, last, n_vocab)
                for cont in self.conts:
                    if cont.tokens:
                        cont.logprobs.append(float(row[cont.tokens[0]]))
                pool.share(self.seq_ids[0], self.seq_ids[1:])
                self._maybe_done(pool, model)

            return commit_prefill
        slots: list[tuple[_Cont, int, int]] = []
        base = len(self.prompt)
        for cont in self.multi:
            end = len(cont.tokens) - 1
            for j in range(cont.fed, min(end, cont.fed + batch.room)):
                slots.append((cont, j, batch.add(cont.tokens[j], base + j, cont.seq_id, logits=True)))
        if not slots:
            return None

        def commit_continuations() -> None:
            for cont, j, idx in slots:
                row = log_softmax_row(lib, ctx, idx, n_vocab)
                cont.logprobs.append(float(row[cont.tokens[j + 1]]))
                cont.fed = j + 1
            self._maybe_done(pool, model)

        return commit_continuations

    def _maybe_done(self, pool: SeqPool, model: LoadedModel) -> None:
        if all(c.fed >= len(c.tokens) - 1 for c in self.multi):
            self.done = True
            first = self.multi[0] if self.multi else None
            keep = self.prompt + (first.tokens[: first.fed] if first else [])
            if self.seq_ids:
                pool.release(self.seq_ids.pop(0), keep=keep)  # the prompt (and a continuation) stay cached
            self.release(pool, model)
            self.reply.resolve([c.logprobs for c in self.conts])
