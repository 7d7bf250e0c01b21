"""A recipe as a LangChain chat model, usable wherever LangChain or LangGraph takes one.

Messages reach the recipe through ``sfdsl.chat_inputs`` (a ``conversation`` input
gets the whole conversation, tool calls and results included; other recipes get the
last user message), and the reply comes back through ``sfdsl.chat_replies``, as
in ``sfrun serve``: the content, ``tool_calls``, an abstention as
``additional_kwargs["refusal"]``, and ``response_metadata`` with ``finish_reason``
(``length`` when a token limit cut the answer short), ``score``, ``abstained``,
``reason``, ``sfdsl`` and ``usage`` summed over every model call inside the run.

* ``bind_tools(tools, tool_choice=...)`` gives the tools to the recipe's ``tools``
  input (LangChain's tool_choice: auto, any/required/True, none, or a tool's name);
* ``with_structured_output(schema, include_raw=...)`` gives the JSON Schema of a
  pydantic model, TypedDict or JSON Schema dict to its ``schema`` input;
* ``stream``/``astream`` yield the answer's tokens as they decode when the answer is
  a single sample of one ``generate`` (``recipes/chat.sf``), else the reply at the end;
* per-call keyword arguments (recipe inputs by name, ``inputs={...}``, ``seed``,
  ``n``, ``temperature``, ``max_tokens``, ...) override the constructor's ``inputs``;
  an unknown one is an ``InputError``, and a parameter the recipe cannot honour too;
* ``get_num_tokens`` counts with the loaded model's own tokenizer.

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
import queue
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr

from sfdsl.api import Recipe, load
from sfdsl.chat_inputs import (
    REQUEST_FIELDS,
    TYPED_FIELDS,
    UnsupportedParameter,
    inputs_from_chat,
    placed_fields,
    text_input,
    typed_input,
    unplaced_fields,
)
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.inputs import bind_inputs
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.pool import BackendPool, pool_from_spec
from sfdsl.runtime.results import RunResult
from sfdsl.runtime.session import Runtime, loop_running

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
    from langchain_core.utils.function_calling import convert_to_json_schema
    from pydantic import BaseModel

    from sfdsl.integrations.langchain_messages import (
        last_chunk,
        openai_tools,
        reply_message,
        to_messages,
        tool_choice_text,
    )
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise ImportError('SfdslChatModel needs the langchain extra: pip install "sfdsl[langchain]"') from exc

#: Per-call keyword arguments besides the recipe's own inputs.
CALL_KWARGS = frozenset({"inputs", "seed", "stream", *REQUEST_FIELDS, *TYPED_FIELDS})
_DONE = object()


class SfdslChatModel(BaseChatModel):
    """Runs an sfdsl recipe as a chat model.

    Args:
        recipe: a .sf path or a loaded ``sfdsl.Recipe``.
        recipe_name: the recipe to run in that file (default: its last recipe). LangChain's ``name``
            keeps its own meaning (the runnable's name in traces).
        backend: a ``sfrun --backend`` SPEC (``llama[:GGUF]``, ``scripted:FILE.json``,
            ``openai:BASE_URL``), a ``Backend`` instance, or None for the recipe's own models.
        inputs: fixed inputs of every run; per-call keyword arguments override them.
        seed: the run seed (``invoke(..., seed=N)`` overrides it per call).
        disk_cache: keep model replies in sfdsl's on-disk cache (for SPEC and None backends); LangChain's own
            `cache` field keeps its meaning.

    Raises:
        CompileError, SourceNotFoundError, RecipeNotFoundError, InputError: at construction.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recipe: Any = Field(description="a .sf path or a loaded sfdsl.Recipe")
    recipe_name: str | None = None
    backend: Any = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    disk_cache: bool = False

    _recipe: Recipe = PrivateAttr()
    _runtime: Runtime = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._recipe = _resolve_recipe(self.recipe, self.recipe_name)
        if typed_input(self._params, "conversation") is None:
            text_input(self._params, recipe=self._recipe.name)  # fails now when no input can take the message
        bind_inputs(self._recipe.ast, dict(self.inputs), require_all=False)
        self._runtime = Runtime(pool=_make_pool(self.backend, cache=self.disk_cache))

    @property
    def _params(self) -> list[tuple[str, str]]:
        return [(name, type_name) for name, type_name, _ in self._recipe.params]

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

    # ------------------------------------------------------------ tools and structured output

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Give ``tools`` to the recipe's ``tools`` input on every call (LangChain's ``tool_choice`` semantics).

        Raises:
            InputError: when the recipe has no ``tools`` input, or ``tool_choice`` names no tool.
        """
        formatted = openai_tools(tools)
        self._require("tools", "tools")
        choice = tool_choice_text(tool_choice, formatted)
        if choice is not None:
            self._require("tool_choice", None)
            kwargs["tool_choice"] = choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(self, schema: dict[str, Any] | type, *, include_raw: bool = False,
                               method: str = "json_schema", strict: bool | None = None,
                               **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """Constrain the answer to ``schema`` (a pydantic model, TypedDict or JSON Schema) via the ``schema`` input.

        ``method`` is ``json_schema`` (the schema constrains the output; always strict) or ``json_mode`` (any
        JSON object, parsed with the schema). Returns a runnable giving the parsed value (a model instance,
        else a dict), or with ``include_raw`` ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``.

        Raises:
            InputError: when the recipe has no ``schema`` input, for another method, ``strict=False``
                or an unknown keyword argument.
        """
        if kwargs:
            raise InputError(f"with_structured_output takes no {', '.join(sorted(kwargs))}")
        if method not in ("json_schema", "json_mode"):
            raise InputError(f"with_structured_output method {method!r} is not supported: use json_schema or "
                             "json_mode (bind_tools gives a recipe tools)")
        if strict is False:
            raise InputError("sfdsl constrains output to the schema itself: strict=False cannot be honoured")
        self._require("response_format", "schema")
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = convert_to_json_schema(schema) if method == "json_schema" else {"type": "object"}
        llm = self.bind(response_format=json_schema, ls_structured_output_format={
            "kwargs": {"method": method}, "schema": json_schema})
        parser: Runnable[Any, Any] = JsonOutputParser()
        if is_model:
            parser = PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    def _require(self, field: str, type_name: str | None) -> None:
        name = f"a {type_name}-typed input" if type_name else f"a '{field}' input"
        if (typed_input(self._params, type_name) if type_name else dict(self._params).get(field)) is None:
            raise UnsupportedParameter(f"recipe '{self._recipe.name}' cannot honour '{field}': it has no "
                                       f"{name.removeprefix('a ')}", param=field)

    # ------------------------------------------------------------ calls

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return _chat_result(self._call_sync(self._run(messages, stop, kwargs)))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return _chat_result(await self._run(messages, stop, kwargs))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        run = self._run(messages, stop, kwargs, on_token=pieces.put)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sfdsl-langchain") as worker:
            future = worker.submit(self._runtime.call, run)
            future.add_done_callback(lambda _: pieces.put(_DONE))
            streamed = []
            while (piece := pieces.get()) is not _DONE:
                streamed.append(piece)
                yield _piece(piece, run_manager)
            yield ChatGenerationChunk(message=last_chunk(future.result(), streamed="".join(streamed)))

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.ensure_future(self._run(messages, stop, kwargs, on_token=pieces.put_nowait))
        task.add_done_callback(lambda _: pieces.put_nowait(_DONE))
        try:
            streamed = []
            while (piece := await pieces.get()) is not _DONE:
                streamed.append(piece)
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
            yield ChatGenerationChunk(message=last_chunk(await task, streamed="".join(streamed)))
        finally:
            task.cancel()

    def _call_sync(self, run: Coroutine[Any, Any, RunResult]) -> RunResult:
        if not loop_running():
            return self._runtime.call(run)
        # Sync LangChain code inside a running loop: wait on a worker thread (blocking, as a sync call does).
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sfdsl-langchain") as worker:
            return worker.submit(self._runtime.call, run).result()

    def _run(self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any],
             on_token: Callable[[str], None] | None = None) -> Coroutine[Any, Any, RunResult]:
        """The run of one call, in the caller's context (its spans and log context)."""
        inputs, seed = self._request(messages, stop, kwargs)
        return _in_context(contextvars.copy_context(), lambda: self._recipe.arun(
            inputs, runtime=self._runtime, seed=seed, on_token=on_token))

    def _request(self, messages: Sequence[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The recipe inputs and run seed of one call.

        Raises:
            InputError: for an unknown keyword argument (with a did-you-mean), or a parameter the recipe
                cannot honour (``UnsupportedParameter``).
        """
        declared = {name for name, _ in self._params}
        unknown = sorted(set(kwargs) - CALL_KWARGS - declared)
        if unknown:
            raise InputError(with_suggestion(f"SfdslChatModel got an unknown keyword argument '{unknown[0]}'",
                                             unknown[0], sorted(CALL_KWARGS | declared)))
        fields = {k: v for k, v in kwargs.items() if k in REQUEST_FIELDS or k in TYPED_FIELDS}
        if stop:
            fields["stop"] = stop
        for name in unplaced_fields(self._params, fields):
            if name != "seed":
                detail = "stop sequences" if name == "stop" else f"'{name}'"
                raise UnsupportedParameter(f"recipe '{self._recipe.name}' cannot honour {detail} {fields[name]!r}"
                                           f": it has no input for it", param=name)
        direct = {k: v for k, v in kwargs.items() if k in declared and k not in fields}
        extra = {**self.inputs, **placed_fields(self._params, fields), **direct, **kwargs.get("inputs", {})}
        inputs = inputs_from_chat(self._params, to_messages(messages), extra=extra, recipe=self._recipe.name)
        return inputs, int(kwargs.get("seed", self.seed))

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the recipe's model's own tokenizer (loading the model if needed).

        Raises:
            InputError: when the backend has no tokenizer sfdsl can reach (a remote OpenAI server).
        """
        backend = self._call_sync(self._model_backend())
        while hasattr(backend, "inner"):
            backend = backend.inner
        engine = getattr(backend, "engine", None)
        if engine is not None:
            return len(engine.model.tokenize(text, add_special=False, parse_special=False))
        if type(backend).__name__ == "ScriptedBackend":
            return len(text.split())  # the scripted backend's tokens are words
        raise InputError(f"backend {type(backend).__name__} has no tokenizer sfdsl can reach")

    async def _model_backend(self) -> Backend:
        from sfdsl.plan import collect_models
        from sfdsl.runtime.model_steps import ModelCaller

        defaults = {**bind_inputs(self._recipe.ast, {}, require_all=False), **self.inputs}
        caller = ModelCaller(None, self._runtime.pool, collect_models(self._recipe.ast.body), {},  # type: ignore[arg-type]
                             lambda **kw: None)
        backend, _ = await caller.backend(None, lambda name: defaults.get(name))
        return backend

    def close(self) -> None:
        """Release the loaded models (from sync code; ``await aclose()`` in a running loop)."""
        self._runtime.close()

    async def aclose(self) -> None:
        """Release the loaded models without blocking the running loop."""
        await self._runtime.aclose()


def _piece(piece: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
    chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
    if run_manager is not None:
        run_manager.on_llm_new_token(piece, chunk=chunk)
    return chunk


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


def _chat_result(result: RunResult) -> ChatResult:
    message = reply_message(result)
    return ChatResult(generations=[ChatGeneration(message=message)],
                      llm_output={"usage": message.response_metadata["usage"]})
