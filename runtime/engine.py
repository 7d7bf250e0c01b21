"""The continuous-batching llama.cpp engine: one context, many requests, stepped on a decode thread.

Async callers submit jobs through a thread-safe queue. The decode thread
(:mod:`decode_thread`: the engine's own, or one that every CPU engine of a
backend pool shares) owns the llama context and loops: admit waiting jobs, first come first served,
while sequence ids are free and the KV cache has room for them (by one of the
two schedules below); build one batch; ``llama_decode`` it; let each job read
its logits. Requests that arrive while others decode
join the next step.

A batch holds one token per decoding sequence, then the short prompts
(shortest first), then chunks of long prompts sized by :class:`StepCost` so
the step lasts at most ``1 + PREFILL_SHARE`` times what the decoding and
short-prompt requests alone would take: a long prompt cannot stall small requests.

Batch-invariant scheduling (``ModelParams.batch_invariant``, the default on CPU). On
CPU, llama.cpp computes each token's row with the same kernels whatever shares
its batch (bf16 KV cells, see :mod:`llama_lib`), and attention skips other
sequences' cells, but it sums a sequence's own cells in cache order. A freed
cell is a hole that the next token, from any sequence, fills, so a sequence's
new token could land *below* its earlier ones and change its logits. So no cell
is freed while a sequence runs: finished sequences' cells go to the pool's grave
(:class:`SeqPool`) and the whole cache is cleared only when the engine is idle
and the next job needs the room. A job is admitted, first come first served,
only when the cells used since the last clear plus every running job's
worst-case growth (``Job.future_cells``: prompt and ``n x max_tokens``) plus its
own leave room, so the cache never runs short and nothing is preempted; a job
that does not fit waits for the running ones to finish (a drain). A seeded
sample is then the same whatever else runs. Only a job that cannot fit even
alone runs alone, and fails with ContextOverflow if it overflows.

The optimistic schedule (``batch_invariant=False``) admits by actual use: a
job starts while the free cells cover its prompt plus a growth reserve. When
the cache runs short, the prefix cache gives back cells first; then the most
recently admitted job is preempted: its sequences are freed and it goes back
to the queue in its arrival place, to restart from its prompt. Only a job alone
in the engine that still overflows fails, with ContextOverflow.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sfdsl.errors import BackendError, ContextOverflow
from sfdsl.log import get_logger
from sfdsl.runtime.decode_thread import DecodeThread, current_decode_thread
from sfdsl.runtime.jobs import Commit, GenJob, GenResult, Job, Reply, ScoreJob
from sfdsl.runtime.kv import SeqPool, TokenBatch
from sfdsl.runtime.llama_lib import LoadedModel, ModelParams
from sfdsl.runtime.sampling import SamplingParams
from sfdsl.runtime.step_cost import StepCost

__all__ = ["Engine", "GenResult"]

log = get_logger(__name__)
PREFILL_SHARE = 0.5  # long prompts may stretch a step with decoding requests by this fraction
LONG_STEP_S = 0.25  # a step of long prompts alone aims at this length, so newcomers wait little for it
MIN_LONG_CHUNK = 64  # ...but carries at least this many prompt tokens (per-step overhead stays small)
RESERVE_PER_SEQ = 8  # KV cells kept free per running sequence when admitting (growth room)


class Engine:
    """Serves generate and score jobs for one model; its steps run on a :class:`DecodeThread`.

    Args:
        thread: the decode thread to run on. By default a CPU-only engine joins the one
            of the enclosing :func:`shared_decode_thread` block, and any other engine gets its own.
    """

    def __init__(self, params: ModelParams, *, thread: DecodeThread | None = None) -> None:
        params = _fit_batch(params)
        self.model = LoadedModel(params)
        self.params = params
        self.invariant = self.model.batch_invariant
        grave = self.model.n_seq_total - 1 if self.invariant else None  # LoadedModel made room for it
        self._pool = SeqPool(
            self.model.lib, self.model.mem, grave if grave is not None else self.model.n_seq_total,
            cache_slots=params.prefix_cache, grave=grave,
        )
        self._filled = 0  # batch-invariant: cells used since the last clear (every decoded token takes a new one)
        self._batch = TokenBatch(self.model.lib, self.model.n_batch)
        self._waiting: list[Job] = []  # sorted by arrival
        self._active: list[Job] = []  # in admission order
        self._arrivals = itertools.count()
        self._cost = StepCost()
        self._short_prompt = max(16, self.model.n_batch // 4)
        self._closed = False
        self._stopped = threading.Event()
        self.steps = 0
        self.preemptions = 0
        self.drains = 0  # batch-invariant: clears of a full cache that waited for the running jobs
        shared = current_decode_thread() if self.model.on_cpu else None
        self._thread = thread or shared or DecodeThread(name=f"sfdsl-llama-{params.path.stem}")
        self._thread.attach(self)

    @property
    def n_seq_max(self) -> int:
        """Most sequences one job may use (the context has more: the prefix cache's slots)."""
        return self.params.n_seq_max

    @property
    def n_ctx_seq(self) -> int:
        return self.model.n_ctx_seq

    @property
    def batch_size(self) -> int:
        """Requests decoding together now (read by serve's metrics; a racy but harmless read)."""
        return len(self._active)

    # -- async API -------------------------------------------------------

    async def generate(
        self,
        prompt: list[int],
        *,
        n: int = 1,
        sampling: SamplingParams,
        max_tokens: int,
        stop: tuple[str, ...] = (),
        logprobs: bool = False,
        on_text: Callable[[str], None] | None = None,
    ) -> list[GenResult]:
        """``n`` samples of the prompt (``n <= n_seq_max``); sample 0's text also goes to ``on_text`` as it grows."""
        if not 1 <= n <= self.n_seq_max:
            raise ValueError(f"n must be in 1..{self.n_seq_max}, got {n}")
        self._check_fits(len(prompt) + 1, "prompt")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[GenResult]] = loop.create_future()
        job = GenJob(
            prompt=prompt,
            reply=Reply(loop, future),
            n=n,
            sampling=sampling,
            max_tokens=max_tokens,
            stop=stop,
            logprobs=logprobs,
            n_ctx_seq=self.n_ctx_seq,
            on_text=on_text,
        )
        return await self._submit(job, future)

    async def score(self, prompt: list[int], continuations: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of each continuation after the prompt."""
        multi = sum(1 for c in continuations if len(c) >= 2)
        if multi > self.n_seq_max:
            raise ValueError(f"at most {self.n_seq_max} multi-token continuations per job, got {multi}")
        self._check_fits(len(prompt) + max((len(c) for c in continuations), default=0), "prompt and continuation")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[list[float]]] = loop.create_future()
        job = ScoreJob(prompt=prompt, reply=Reply(loop, future), continuations=continuations)
        return await self._submit(job, future)

    async def aclose(self) -> None:
        """Stop the engine (failing unfinished jobs) and free the context and model."""
        if self._closed:
            return
        self._closed = True
        if not self._stopped.is_set():
            self._thread.detach(self)
        await asyncio.to_thread(self._stopped.wait)

    async def _submit(self, job: Job, future: asyncio.Future[Any]) -> Any:
        if self._closed or self._stopped.is_set():
            raise BackendError("the llama engine is closed")
        if not job.prompt:
            raise BackendError("cannot decode an empty prompt (the model adds no BOS token)")
        self._thread.post(self, job)
        return await future

    def _check_fits(self, n_tokens: int, what: str) -> None:
        if n_tokens > self.n_ctx_seq:
            raise ContextOverflow(
                f"{what} needs {n_tokens} tokens but the context holds {self.n_ctx_seq}; "
                "shorten it or load the model with a larger n_ctx"
            )

    # -- on the decode thread --------------------------------------------

    @property
    def has_work(self) -> bool:
        return bool(self._active or self._waiting)

    def enqueue(self, job: Job) -> None:
        """Queue a submitted job in arrival order (fail it when the engine has stopped)."""
        if self._stopped.is_set():
            job.reply.fail(BackendError("the llama engine is closed"))
            return
        job.arrival = next(self._arrivals)
        self._waiting.append(job)

    def tick(self) -> bool:
        """Admit what fits and decode one step; False when the engine crashed (it then stops itself)."""
        try:
            self._drop_cancelled()
            self._admit()
            if self._active:
                self._step()
            return True
        except BaseException as exc:  # keep the decode thread and its other engines alive
            log.exception("engine_crashed")
            self._shutdown(exc)
            return False

    def stop(self) -> None:
        """Fail unfinished jobs and free the model (asked by :meth:`aclose`)."""
        self._shutdown(None)

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._active if j.reply.cancelled]:
            self._retire(job)
        self._waiting = [j for j in self._waiting if not j.reply.cancelled]

    # -- admission and preemption ----------------------------------------

    def kv_used(self) -> int:
        """KV cells held by running jobs and (at most) by the prefix cache (exactly: cells in use when invariant)."""
        if self.invariant:
            return self._filled
        return sum(j.kv_used() for j in self._active) + self._pool.cached_cells

    def _admit(self) -> None:
        if self.invariant:
            self._admit_invariant()
        else:
            self._admit_optimistic()

    def _admit_invariant(self) -> None:
        """Start waiting jobs in arrival order while the cells used plus every job's worst-case growth fit.

        A job that does not fit waits for the running ones to finish; the idle engine then clears
        the whole cache (the only time cells are freed) and starts it. A job starts regardless
        on a clean cache: it runs alone.
        """
        while self._waiting:
            job = self._waiting[0]
            hit = self._pool.lookup(job.prompt) if self._pool.cache_slots else None
            reuse = min(hit[1], len(job.prompt) - 1) if hit else 0
            if reuse < self._pool.min_cached:
                hit, reuse = None, 0
            committed = self._filled + sum(j.future_cells() for j in self._active)
            if committed + job.future_cells() - reuse > self.model.n_ctx and (self._active or self._filled):
                if self._active:
                    return  # drain: new tokens may not go below running ones, so wait for them to end
                log.info("kv_cache_cleared", cells=self._filled, n_ctx=self.model.n_ctx, waiting=len(self._waiting))
                self._pool.clear()
                self._filled = 0
                self.drains += 1
                continue
            seq_ids = self._pool.acquire(job.n_seqs, spare=hit[0] if hit else -1)
            if seq_ids is None:
                return
            self._start(job, seq_ids, hit, reuse)

    def _start(self, job: Job, seq_ids: list[int], hit: tuple[int, int] | None, reuse: int) -> None:
        """Bind an admitted job to its sequence ids, copying a cached prefix of ``reuse`` tokens."""
        self._waiting.pop(0)
        try:
            job.bind(seq_ids, self.model)
        except BaseException as exc:
            job.release(self._pool, self.model)
            self._fail(job, exc)
            return
        if hit is not None and reuse >= self._pool.min_cached:  # the last prompt token is decoded for its logits
            self._pool.copy_prefix(hit[0], seq_ids[0], reuse)
            job.start_at(reuse)
        self._active.append(job)

    def _admit_optimistic(self) -> None:
        """Start waiting jobs in arrival order while ids are free and the free cells cover their need.

        The need is the job's prompt and first tokens (or what it held before a
        preemption) plus RESERVE_PER_SEQ cells for every sequence then running.
        A job starts regardless when nothing else runs. An idle engine whose cache has
        holes clears it first, so a request run alone lays its cells out like a fresh one.
        """
        if self._waiting and not self._active and self._pool.fragmented:
            self._pool.clear()  # idle with holes: start the next job on a clean cache (cells in order)
        while self._waiting:
            job = self._waiting[0]
            live = sum(j.n_seqs for j in self._active) + job.n_seqs
            hit = self._pool.lookup(job.prompt) if self._pool.cache_slots else None
            spare = hit[0] if hit else -1
            reuse = min(hit[1], len(job.prompt) - 1) if hit else 0
            need = job.admit_need() - reuse + min(RESERVE_PER_SEQ * live, self.model.n_ctx // 8)
            if self._active and not self._make_room(need, spare=spare):
                return
            seq_ids = self._pool.acquire(job.n_seqs, spare=spare)
            if seq_ids is None:
                return
            self._start(job, seq_ids, hit, reuse)

    def _make_room(self, need: int, *, spare: int = -1) -> bool:
        """Evict cached prefixes until ``need`` more cells fit; False when they still do not."""
        while self.kv_used() + need > self.model.n_ctx:
            if not self._pool.evict(spare=spare):
                return False
        return True

    def _preempt_newest(self) -> bool:
        """Free the most recently admitted job and requeue it in its arrival place; False if it runs alone."""
        if len(self._active) < 2:
            return False
        job = self._active.pop()
        job.preempt(self._pool, self.model)
        bisect.insort(self._waiting, job, key=lambda j: j.arrival)
        self.preemptions += 1
        log.info("request_preempted", arrival=job.arrival, kv_used=self.kv_used(), n_ctx=self.model.n_ctx)
        return True

    # -- one step --------------------------------------------------------

    def _step(self) -> None:
        """Build and decode one batch, making room (cache, then preemption) when the KV cache is short."""
        while self._active:
            commits = self._build()
            if not commits:
                return
            if not self.invariant and not self._make_room(self._batch.n) and self._preempt_newest():
                continue  # (an invariant engine reserved the room at admission)
            started = time.perf_counter()
            rc = self._batch.decode(self.model.ctx)
            if rc == 0:
                self.steps += 1
                self._filled += self._batch.n
                for job, commit in commits:
                    try:
                        commit()
                    except BaseException as exc:
                        self._fail(job, exc)
                self._cost.observe(self._batch.n, time.perf_counter() - started)  # no per-step log: hot path
                self._active = [j for j in self._active if not j.done]
                return
            if rc == 1:
                if self._pool.evict() or self._preempt_newest():
                    continue
                self._fail(
                    self._active[0],
                    ContextOverflow(
                        f"the request needs more KV cells than the cache holds ({self.model.n_ctx}); "
                        "load the model with a larger n_ctx or ask for fewer samples or tokens"
                    ),
                )
                continue
            for job, _ in commits:
                self._fail(job, BackendError(f"llama_decode failed with code {rc}"))
            return

    def _build(self) -> list[tuple[Job, Commit]]:
        """Fill the batch: decoding sequences, short prompts (shortest first), then budgeted long prompts."""
        batch = self._batch
        batch.clear()
        commits: list[tuple[Job, Commit]] = []

        def add(job: Job, limit: int) -> None:
            if batch.room > 0:
                commit = job.schedule(batch, self.model, self._pool, limit)
                if commit is not None:
                    commits.append((job, commit))

        prefilling = sorted((j for j in self._active if j.prefilling), key=lambda j: (j.remaining_prompt, j.arrival))
        for job in self._active:
            if not job.prefilling:
                add(job, 0)
        long_prompts = []
        for job in prefilling:
            if job.remaining_prompt <= self._short_prompt:
                add(job, batch.room)
            else:
                long_prompts.append(job)
        if batch.n:
            budget = self._cost.prefill_budget(batch.n, share=PREFILL_SHARE, cap=batch.room)
        else:
            budget = max(MIN_LONG_CHUNK, self._cost.tokens_within(LONG_STEP_S))
        for job in long_prompts:
            before = batch.n
            add(job, budget)
            budget -= batch.n - before
            if budget <= 0:
                break
        return commits

    def _fail(self, job: Job, exc: BaseException) -> None:
        log.warning("request_failed", error=type(exc).__name__, detail=str(exc))
        self._retire(job)
        if not isinstance(exc, BackendError):
            wrapped = BackendError(f"llama engine error: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        job.reply.fail(exc)

    def _retire(self, job: Job) -> None:
        job.release(self._pool, self.model)
        job.done = True
        if job in self._active:
            self._active.remove(job)

    def _shutdown(self, crash: BaseException | None) -> None:
        if self._stopped.is_set():
            return
        reason = BackendError(f"the llama engine stopped: {crash}" if crash else "the llama engine was closed")
        try:
            for job in [*self._active, *self._waiting]:
                job.release(self._pool, self.model)
                job.reply.fail(reason)
            self._active.clear()
            self._waiting.clear()
            self._batch.free()
            self.model.close()
        finally:
            self._stopped.set()
        log.info("engine_stopped", steps=self.steps)


def _fit_batch(params: ModelParams) -> ModelParams:
    """Make room for one decode token per sequence in every batch."""
    n_seqs = params.n_seq_max + params.prefix_cache  # a job may take evicted cache slots too
    return params if params.n_batch >= n_seqs else replace(params, n_batch=n_seqs)
