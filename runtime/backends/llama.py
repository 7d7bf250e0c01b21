"""The embedded llama.cpp backend: GGUF models served by sfdsl's own batching engine.

Example:
    >>> backend = LlamaBackend.from_params({"model": "default", "n_seq_max": 8})  # doctest: +SKIP
    >>> request = GenerateRequest(prompt=Prompt(text="2+2="), n=4, temperature=0.7, seed=1)  # doctest: +SKIP
    >>> await backend.generate(request)  # doctest: +SKIP

Tokenization: a text prompt is tokenized as is (BOS added when the model
wants one; special-token text such as ``<|im_end|>`` is parsed). A chat
prompt is rendered with the model's chat template first. For scoring, each
continuation is tokenized together with the prompt text and split at the
prompt's token count when the prompt's tokens are a prefix of the joint
tokens; otherwise (a token straddles the boundary) it is tokenized on its own.
Either way the prompt's tokens are shared by all continuations, so the
prompt is decoded once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from sfdsl.errors import BackendError, BackendTimeout, InputError, SfdslError
from sfdsl.models import file_fingerprint, resolve_model_path
from sfdsl.runtime.backends.base import (
    Backend,
    ChoiceRequest,
    Completion,
    GenerateRequest,
    Prompt,
    ScoreRequest,
    SequenceScore,
    normalise_logprobs,
)
from sfdsl.runtime.chat_template import ChatTemplate
from sfdsl.runtime.engine import Engine, GenResult
from sfdsl.runtime.llama_lib import ModelParams
from sfdsl.runtime.sampling import SamplingParams

__all__ = ["LlamaBackend"]

T = TypeVar("T")
_MODEL_KEYS = {f.name for f in fields(ModelParams)} - {"path"}
PARAM_KEYS = frozenset(_MODEL_KEYS | {"model", "path", "timeout_s"})


class LlamaBackend(Backend):
    """A local GGUF model behind the continuous-batching engine."""

    def __init__(self, params: ModelParams, *, timeout_s: float | None = None) -> None:
        self.path = params.path
        self.model_id = file_fingerprint(params.path)
        self.timeout_s = timeout_s
        self.engine = Engine(params)
        model = self.engine.model
        self._template = ChatTemplate(
            model.chat_template(),
            bos_token=model.token_text(int(model.lib.llama_vocab_bos(model.vocab))),
            eos_token=model.token_text(int(model.lib.llama_vocab_eos(model.vocab))),
        )

    @property  # type: ignore[override]
    def context_tokens(self) -> int:
        return self.engine.n_ctx_seq

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LlamaBackend:
        """Build from a config mapping: ``model``/``path`` plus ModelParams keys and ``timeout_s``."""
        unknown = sorted(set(params) - PARAM_KEYS)
        if unknown:
            raise InputError(f"unknown llama backend parameter(s) {unknown}; known: {sorted(PARAM_KEYS)}")
        if "model" in params and "path" in params:
            raise InputError("give the llama backend either 'model' or 'path', not both")
        path = resolve_model_path(params.get("model", params.get("path")))
        options = {k: v for k, v in params.items() if k in _MODEL_KEYS}
        try:
            model_params = ModelParams(path=path, **options)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad llama backend parameters: {exc}") from exc
        timeout = params.get("timeout_s")
        return cls(model_params, timeout_s=float(timeout) if timeout is not None else None)

    # -- prompts ---------------------------------------------------------

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees: plain text untouched, chat through the template."""
        if prompt.messages is None:
            return prompt.text or ""
        return self._template.render(prompt.messages)

    def tokenize_prompt(self, prompt: Prompt) -> tuple[str, list[int]]:
        text = self.render(prompt)
        model = self.engine.model
        bos = self._template.bos_token
        add_special = not (prompt.is_chat and model.add_bos and bos and text.startswith(bos))
        return text, model.tokenize(text, add_special=add_special, parse_special=True)

    def tokenize_continuation(self, prompt_text: str, prompt_tokens: list[int], continuation: str) -> list[int]:
        """Tokens of ``continuation`` after the prompt (see the module docstring)."""
        if not continuation:
            return []
        model = self.engine.model
        joint = model.tokenize(prompt_text + continuation, add_special=True, parse_special=True)
        n = len(prompt_tokens)
        if len(joint) > n and joint[:n] == prompt_tokens:
            return joint[n:]
        return model.tokenize(continuation, add_special=False, parse_special=False)

    # -- Backend API -----------------------------------------------------

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        return await self._generate(request, None)

    async def generate_stream(self, request: GenerateRequest, sink: Callable[[str], None]) -> list[Completion]:
        """``generate``; sample 0's text goes to ``sink`` token by token as the engine decodes it."""
        return await self._generate(request, sink)

    async def _generate(self, request: GenerateRequest, sink: Callable[[str], None] | None) -> list[Completion]:
        _, tokens = self.tokenize_prompt(request.prompt)
        width = self.engine.n_seq_max
        chunks = []
        for start in range(0, request.n, width):
            sampling = SamplingParams(
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=request.top_k,
                seed=None if request.seed is None else request.seed + start,
                grammar=request.grammar,
            )
            chunks.append(
                self.engine.generate(
                    tokens,
                    n=min(width, request.n - start),
                    sampling=sampling,
                    max_tokens=request.max_tokens,
                    stop=request.stop,
                    logprobs=request.logprobs,
                    on_text=sink if start == 0 else None,
                )
            )
        results: list[GenResult] = [r for part in await self._call(_gather_all(chunks)) for r in part]
        return [
            Completion(
                text=r.text,
                completion_tokens=r.completion_tokens,
                prompt_tokens=len(tokens),
                cached_prompt_tokens=r.cached_prompt_tokens,
                finish_reason=r.finish_reason,
                logprobs=r.logprobs,
                index=i,
            )
            for i, r in enumerate(results)
        ]

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        text, tokens = self.tokenize_prompt(request.prompt)
        conts = [self.tokenize_continuation(text, tokens, c) for c in request.continuations]
        width = self.engine.n_seq_max
        groups: list[list[int]] = [[]]  # indices of continuations, at most `width` multi-token ones per group
        for i, cont in enumerate(conts):
            if len(cont) >= 2 and sum(1 for j in groups[-1] if len(conts[j]) >= 2) >= width:
                groups.append([])
            groups[-1].append(i)
        parts = await self._call(_gather_all([self.engine.score(tokens, [conts[i] for i in g]) for g in groups]))
        by_index = {i: lps for g, part in zip(groups, parts) for i, lps in zip(g, part)}
        return [SequenceScore(token_logprobs=by_index[i], prompt_tokens=len(tokens)) for i in range(len(conts))]

    async def choice_probs(self, request: ChoiceRequest) -> list[float]:
        """Renormalised choice probabilities.

        When every choice is one token after the prompt, the engine answers from
        the prompt's single next-token distribution (no extra sequences);
        otherwise each choice is scored in its own sequence sharing the prompt.
        """
        scores = await self.score(ScoreRequest(prompt=request.prompt, continuations=request.choices))
        return normalise_logprobs([s.logprob for s in scores])

    async def aclose(self) -> None:
        await self.engine.aclose()

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Await an engine call, translating failures into sfdsl errors."""
        try:
            if self.timeout_s is None:
                return await awaitable
            return await asyncio.wait_for(awaitable, self.timeout_s)
        except SfdslError:
            raise
        except TimeoutError as exc:
            raise BackendTimeout(f"llama backend call exceeded {self.timeout_s}s") from exc
        except (ValueError, OSError, RuntimeError) as exc:
            raise BackendError(f"llama backend failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"LlamaBackend(path={str(self.path)!r}, model_id={self.model_id!r})"


async def _gather_all(awaitables: list[Awaitable[T]]) -> list[T]:
    """Run all awaitables concurrently; on the first failure cancel the rest, then re-raise."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

