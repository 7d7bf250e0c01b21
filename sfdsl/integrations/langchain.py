"""A recipe as a LangChain chat model, usable wherever LangChain or LangGraph takes one.

The last user message goes to the recipe's ``question`` input (else its first
``str`` input), as in ``sfrun serve``; the reply's content is the recipe's
answer, and its ``response_metadata`` carries ``score``, ``abstained``,
``reason`` and ``usage`` summed over every model call inside the run.

Each model instance owns one ``sfdsl.Runtime``: its models load on first use
and serve every call. ``ainvoke`` runs in the caller's event loop and never
blocks it; ``invoke`` and ``batch`` (threads) run on the runtime's private loop
(from inside a running loop, through a worker thread). All calls reach the
same loaded models, so concurrent calls are batched by the engine, and spans
of a run nest under the caller's OpenTelemetry span. ``close()``/``aclose()``
release the models (also done at garbage collection and at exit).

Example:
    >>> from sfdsl.integrations.langchain import SfdslChatModel                   # doctest: +SKIP
    >>> model = SfdslChatModel(recipe="recipes/self_consistency.sf", inputs={"n": 3})  # doctest: +SKIP
    >>> model.invoke("What is 2+2?").content                                       # doctest: +SKIP
    '4'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr

from sfdsl.api import Recipe, load
from sfdsl.chat_inputs import REQUEST_FIELDS, ChatMessage, inputs_from_chat, text_input
from sfdsl.errors import InputError
from sfdsl.inputs import bind_inputs
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.pool import BackendPool, pool_from_spec
from sfdsl.runtime.results import RunResult
from sfdsl.runtime_session import Runtime

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise ImportError('SfdslChatModel needs the langchain extra: pip install "sfdsl[langchain]"') from exc

ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class SfdslChatModel(BaseChatModel):
    """Runs an sfdsl recipe as a chat model.

    Args:
        recipe: a .sf path or a loaded ``sfdsl.Recipe``.
        name: the recipe to run in that file (default: its last recipe).
        backend: a ``sfrun --backend`` SPEC (``llama[:GGUF]``, ``scripted:FILE.json``,
            ``openai:BASE_URL``), a ``Backend`` instance, or None for the recipe's own models.
        inputs: fixed inputs of every run; ``invoke(..., inputs={...})`` adds per-call ones.
        seed: the run seed (``invoke(..., seed=N)`` overrides it per call).
        disk_cache: keep model replies in sfdsl's on-disk cache (for SPEC and None backends); LangChain's own
            `cache` field keeps its meaning.

    Raises:
        CompileError, SourceNotFoundError, RecipeNotFoundError, InputError: at construction.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recipe: Any = Field(description="a .sf path or a loaded sfdsl.Recipe")
    backend: Any = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    disk_cache: bool = False

    _recipe: Recipe = PrivateAttr()
    _runtime: Runtime = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._recipe = _resolve_recipe(self.recipe, self.name)
        params = [(name, type_name) for name, type_name, _ in self._recipe.params]
        text_input(params, recipe=self._recipe.name)  # fails now when no input can take the message
        bind_inputs(self._recipe.ast, dict(self.inputs), require_all=False)
        self._runtime = Runtime(pool=_make_pool(self.backend, cache=self.disk_cache))

    @property
    def _llm_type(self) -> str:
        return "sfdsl"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"recipe": self._recipe.name, "file": self._recipe.file, "inputs": self.inputs, "seed": self.seed,
                "backend": self.backend if isinstance(self.backend, str | None) else type(self.backend).__name__}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "sfdsl"
        params["ls_model_name"] = self._recipe.name
        return params

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        inputs, seed = self._request(messages, stop, kwargs)
        run = _in_context(contextvars.copy_context(),
                          lambda: self._recipe.arun(inputs, runtime=self._runtime, seed=seed))
        if not _loop_running():
            return _chat_result(self._runtime.call(run))
        # Sync LangChain code inside a running loop: wait on a worker thread (blocking, as a sync call does).
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sfdsl-langchain") as worker:
            return _chat_result(worker.submit(self._runtime.call, run).result())

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        inputs, seed = self._request(messages, stop, kwargs)
        return _chat_result(await self._recipe.arun(inputs, runtime=self._runtime, seed=seed))

    def _request(self, messages: Sequence[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The recipe inputs and run seed of one call."""
        if stop:
            raise InputError(f"recipe '{self._recipe.name}' cannot honour stop sequences {stop!r}")
        params = [(name, type_name) for name, type_name, _ in self._recipe.params]
        chat = [ChatMessage(role=ROLES.get(m.type, m.type), content=m.text) for m in messages]
        inputs = inputs_from_chat(params, chat, request_fields={k: kwargs.get(k) for k in REQUEST_FIELDS},
                                  extra={**self.inputs, **kwargs.get("inputs", {})}, recipe=self._recipe.name)
        return inputs, int(kwargs.get("seed", self.seed))

    def close(self) -> None:
        """Release the loaded models (from sync code; ``await aclose()`` in a running loop)."""
        self._runtime.close()

    async def aclose(self) -> None:
        """Release the loaded models without blocking the running loop."""
        await self._runtime.aclose()


def _resolve_recipe(recipe: Any, name: str | None) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe if name is None or name == recipe.name else recipe.program.recipe(name)
    if isinstance(recipe, str | Path):
        return load(recipe).recipe(name)
    raise InputError(f"recipe must be a .sf path or an sfdsl.Recipe, got {type(recipe).__name__}")


def _make_pool(backend: Any, *, cache: bool) -> BackendPool:
    if isinstance(backend, Backend):
        return BackendPool(backend=backend)
    if backend is None or isinstance(backend, str):
        from sfdsl.runtime.cache import CachedBackend

        return pool_from_spec(backend, wrap=CachedBackend if cache else None)
    raise InputError(f"backend must be a SPEC string, an sfdsl Backend or None, got {type(backend).__name__}")


async def _in_context(context: contextvars.Context, run: Callable[[], Coroutine[Any, Any, RunResult]]) -> RunResult:
    """Run ``run()`` as a task in ``context`` (the caller's), so its spans and log context follow the caller."""
    return await context.run(lambda: asyncio.ensure_future(run()))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _content(result: RunResult) -> str:
    if result.abstained or result.answer is None:
        return ""
    return result.answer if isinstance(result.answer, str) else json.dumps(result.answer, default=str)


def _chat_result(result: RunResult) -> ChatResult:
    cost = result.cost
    usage = {"calls": cost.calls, "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens}
    metadata = {"score": result.score, "abstained": result.abstained, "reason": result.reason, "usage": usage,
                "outputs": result.outputs, "run_id": result.run_id, "model_name": result.recipe,
                "model_provider": "sfdsl"}
    message = AIMessage(content=_content(result), response_metadata=metadata, usage_metadata={
        "input_tokens": cost.prompt_tokens, "output_tokens": cost.completion_tokens, "total_tokens": cost.tokens})
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"usage": usage})
