"""The continuous-batching llama.cpp engine: one worker thread, one context, many requests.

Async callers submit jobs through a thread-safe queue. The worker thread owns
the llama context and loops: admit waiting jobs while sequence ids and their
worst-case KV cells (prompt + n × max_tokens) are free,
build one batch (one token for every decoding sequence first, then prompt
chunks with the room left), ``llama_decode`` it, and let each job read its
logits. Requests that arrive while others decode join the next step.

When ``llama_decode`` reports that the KV cache is full, the most recently
admitted job in the batch fails with ContextOverflow and the step is retried
without it, so the other requests carry on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from dataclasses import replace
from typing import Any

from sfdsl.errors import BackendError, ContextOverflow
from sfdsl.log import get_logger
from sfdsl.runtime.jobs import Commit, GenJob, GenResult, Job, Reply, ScoreJob
from sfdsl.runtime.kv import SeqPool, TokenBatch
from sfdsl.runtime.llama_lib import LoadedModel, ModelParams
from sfdsl.runtime.sampling import SamplingParams

__all__ = ["Engine", "GenResult"]

log = get_logger(__name__)
_STOP = object()


class Engine:
    """Serves generate and score jobs for one model from a dedicated worker thread."""

    def __init__(self, params: ModelParams) -> None:
        params = _fit_batch(params)
        self.model = LoadedModel(params)
        self.params = params
        self._pool = SeqPool(self.model.lib, self.model.mem, self.model.n_seq_max)
        self._batch = TokenBatch(self.model.lib, self.model.n_batch)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Job] = deque()
        self._active: list[Job] = []
        self._reserved = 0  # worst-case KV cells of the active jobs
        self._kv_reserved: dict[int, int] = {}
        self._closed = False
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name=f"sfdsl-llama-{params.path.stem}", daemon=True)
        self._thread.start()

    @property
    def n_seq_max(self) -> int:
        return self.model.n_seq_max

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
    ) -> list[GenResult]:
        """``n`` samples of the prompt (``n <= n_seq_max``)."""
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
        """Stop the worker (failing unfinished jobs) and free the context and model."""
        if self._closed:
            return
        self._closed = True
        self._inbox.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    async def _submit(self, job: Job, future: asyncio.Future[Any]) -> Any:
        if self._closed or not self._thread.is_alive():
            raise BackendError("the llama engine is closed")
        if not job.prompt:
            raise BackendError("cannot decode an empty prompt (the model adds no BOS token)")
        self._inbox.put(job)
        return await future

    def _check_fits(self, n_tokens: int, what: str) -> None:
        if n_tokens > self.n_ctx_seq:
            raise ContextOverflow(
                f"{what} needs {n_tokens} tokens but the context holds {self.n_ctx_seq}; "
                "shorten it or load the model with a larger n_ctx"
            )

    # -- worker thread ---------------------------------------------------

    def _run(self) -> None:
        crash: BaseException | None = None
        try:
            while self._take_inbox(block=not self._active and not self._waiting):
                self._drop_cancelled()
                self._admit()
                if self._active:
                    self._step()
        except BaseException as exc:  # keep the thread from dying silently
            crash = exc
            log.exception("engine_crashed")
        finally:
            self._shutdown(crash)

    def _take_inbox(self, *, block: bool) -> bool:
        """Move submitted jobs into the waiting queue; False once asked to stop."""
        try:
            item = self._inbox.get() if block else self._inbox.get_nowait()
            while True:
                if item is _STOP:
                    return False
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._active if j.reply.cancelled]:
            self._retire(job)
        self._waiting = deque(j for j in self._waiting if not j.reply.cancelled)

    def _admit(self) -> None:
        """Start waiting jobs in arrival order while sequence ids and worst-case KV cells are free.

        A job whose worst case alone exceeds the cache still starts when nothing else runs;
        it then fails alone with ContextOverflow if it really fills the cache.
        """
        while self._waiting:
            job = self._waiting[0]
            need = job.kv_need()
            if self._active and self._reserved + need > self.model.n_ctx:
                return
            seq_ids = self._pool.acquire(job.n_seqs)
            if seq_ids is None:
                return
            self._waiting.popleft()
            self._reserved += need
            self._kv_reserved[id(job)] = need
            try:
                job.bind(seq_ids, self.model)
            except BaseException as exc:
                job.release(self._pool, self.model)
                self._fail(job, exc)
                continue
            self._active.append(job)

    def _step(self) -> None:
        """Build and decode one batch, retrying without a job when the KV cache is full."""
        while self._active:
            commits = self._build()
            if not commits:
                return
            rc = self._batch.decode(self.model.ctx)
            if rc == 0:
                self.steps += 1
                log.debug("batch_decoded", n_tokens=self._batch.n, n_jobs=len(commits))
                for job, commit in commits:
                    try:
                        commit()
                    except BaseException as exc:
                        self._fail(job, exc)
                for job in self._active:
                    if job.done:
                        self._reserved -= self._kv_reserved.pop(id(job), 0)
                self._active = [j for j in self._active if not j.done]
                return
            victim = commits[-1][0]
            if rc == 1:
                self._fail(
                    victim,
                    ContextOverflow(
                        f"the KV cache is full ({self.model.n_ctx} cells shared by all sequences); "
                        "load the model with a larger n_ctx or send fewer concurrent requests"
                    ),
                )
                continue
            for job, _ in commits:
                self._fail(job, BackendError(f"llama_decode failed with code {rc}"))
            return

    def _build(self) -> list[tuple[Job, Commit]]:
        """Fill the batch: decoding sequences first, then prompt chunks in admission order."""
        self._batch.clear()
        commits: list[tuple[Job, Commit]] = []
        ordered = [j for j in self._active if not j.prefilling] + [j for j in self._active if j.prefilling]
        for job in ordered:
            if self._batch.room == 0:
                break
            commit = job.schedule(self._batch, self.model, self._pool)
            if commit is not None:
                commits.append((job, commit))
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
        self._reserved -= self._kv_reserved.pop(id(job), 0)
        job.release(self._pool, self.model)
        job.done = True
        if job in self._active:
            self._active.remove(job)

    def _shutdown(self, crash: BaseException | None) -> None:
        self._take_inbox(block=False)
        reason = BackendError(f"the llama engine stopped: {crash}" if crash else "the llama engine was closed")
        for job in [*self._active, *self._waiting]:
            job.release(self._pool, self.model)
            job.reply.fail(reason)
        self._active.clear()
        self._waiting.clear()
        self._batch.free()
        self.model.close()
        log.info("engine_stopped", steps=self.steps)


def _fit_batch(params: ModelParams) -> ModelParams:
    """Make room for one decode token per sequence in every batch."""
    return params if params.n_batch >= params.n_seq_max else replace(params, n_batch=params.n_seq_max)
