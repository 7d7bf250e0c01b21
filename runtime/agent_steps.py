"""The steps whose replies are structured: `act` (a tool call or a text answer) and `generate (schema:)`.

Both follow one loop: the ``n`` samples decode as one batch; each reply is read (JSON valid for a schema);
the invalid ones are asked again, together, with fresh seeds, at most ``retries`` times; then the step
fails with a located ``StepError`` naming the first problem.

On a backend with native tool calling (OpenAI-compatible servers, for chat prompts) ``tools`` and
``tool_choice`` are sent and the returned ``tool_calls`` are read; elsewhere (llama.cpp, the scripted
backend) the tools are described in the system turn and a grammar built from their schemas (llama.cpp's
own converter) constrains the reply to ``{"name": ..., "arguments": {...}}`` or ``{"answer": "..."}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sfdsl.agent_values import ToolSpec
from sfdsl.errors import StepError
from sfdsl.json_schema import gbnf_for_schema, schema_problem, validation_problem
from sfdsl.log import get_logger
from sfdsl.runtime.backends.base import Backend, Completion, GenerateRequest, Message, Prompt
from sfdsl.step_kind import with_defaults
from sfdsl.steps import act as act_step
from sfdsl.steps import generate as generate_step
from sfdsl.values import Action

if TYPE_CHECKING:
    from sfdsl.plan import Plan
    from sfdsl.runtime.executor import Executor, Frame, RecipeState
    from sfdsl.runtime.model_steps import ModelCaller

log = get_logger(__name__)

#: A retry samples at least this hot, so that a greedy step's retry can differ from its first reply.
RETRY_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Invalid:
    """A reply that could not be read, and why."""

    problem: str


Reader = Callable[[Completion], Any]


# ---------------------------------------------------------------- the sample-and-retry loop


async def sample_valid(caller: ModelCaller, backend: Backend, request: GenerateRequest, read: Reader, *,
                       retries: int, what: str, location: str) -> list[Any]:
    """``request.n`` replies read by ``read``; invalid ones are asked again up to ``retries`` times.

    Raises:
        StepError: when a sample is still invalid after the retries, naming its problem.
    """
    values = [read(c) for c in await caller.complete(backend, request, what)]
    for attempt in range(1, retries + 1):
        bad = [i for i, v in enumerate(values) if isinstance(v, Invalid)]
        if not bad:
            break
        log.info("reply_retried", step=what, samples=len(bad), attempt=attempt, problem=values[bad[0]].problem)
        seed = None if request.seed is None else request.seed + attempt * request.n
        again = request.model_copy(update={"n": len(bad), "seed": seed,
                                           "temperature": max(request.temperature, RETRY_TEMPERATURE)})
        for i, completion in zip(bad, await caller.complete(backend, again, what)):
            values[i] = read(completion)
    for i, value in enumerate(values):
        if isinstance(value, Invalid):
            tries = f" after {retries} retries" if retries else ""
            raise StepError(f"{what}: sample {i} is not a valid reply{tries}: {value.problem}", location=location)
    return values


def _json(c: Completion) -> Any:
    try:
        return json.loads(c.text)
    except json.JSONDecodeError as exc:
        cut = " (cut off by max_tokens)" if c.finish_reason == "length" else ""
        return Invalid(f"the reply is not JSON{cut}: {exc.msg}: {c.text[:120]!r}")


# ---------------------------------------------------------------- generate (schema: S)


def read_json(schema: dict[str, Any]) -> Reader:
    """A reader of replies that must be JSON valid for ``schema``."""

    def read(c: Completion) -> Any:
        value = _json(c)
        if isinstance(value, Invalid):
            return value
        problem = validation_problem(value, schema)
        return Invalid(f"the reply does not fit the schema ({problem})") if problem else value

    return read


async def generate_json(caller: ModelCaller, backend: Backend, prompt: Prompt, params: dict[str, Any],
                        path: tuple[str, ...], location: str) -> list[Any]:
    """`generate PROMPT (schema: S)`: ``n`` JSON values valid for the schema."""
    opts = with_defaults(generate_step.PARAMS, params)
    schema = opts.pop("schema")
    native = backend.native_json_schema and prompt.is_chat
    problem = schema_problem(schema, grammar=not native)
    if problem is not None:
        raise StepError(f"the schema of generate cannot constrain generation: {problem}", location=location)
    request = caller.request(prompt, opts, path)
    if native:
        request = request.model_copy(update={"json_schema": schema})
    else:
        request = request.model_copy(update={"grammar": gbnf_for_schema(schema)})
    return await sample_valid(caller, backend, request, read_json(schema), retries=int(opts["retries"]),
                              what="/".join(path), location=location)


# ---------------------------------------------------------------- act


def action_schema(tools: Sequence[ToolSpec], choice: str) -> dict[str, Any]:
    """The JSON Schema of a reply on a backend without native tool calling: one alternative per allowed action."""
    options: list[dict[str, Any]] = [
        {"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.function.parameters},
         "required": ["name", "arguments"], "additionalProperties": False}
        for t in tools if choice in ("auto", "required") or choice == t.name
    ]
    if choice in ("auto", "none"):
        options.append({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                        "additionalProperties": False})
    return options[0] if len(options) == 1 else {"oneOf": options}


def tool_instructions(tools: Sequence[ToolSpec], choice: str) -> str:
    """What the system turn says about the tools and the reply's format, on a backend without native tools."""
    listed = [json.dumps({"name": t.name, "description": t.function.description,
                          "parameters": t.function.parameters}, ensure_ascii=False) for t in tools]
    lines = ["You can call these tools:", *listed]
    call = 'reply with only a JSON object {"name": "<tool name>", "arguments": {<the arguments>}}'
    answer = 'To answer without a tool, reply with only {"answer": "<your answer>"}.'
    if choice == "auto":
        lines += [f"To call a tool, {call}.", answer]
    elif choice == "required":
        lines.append(f"Call one tool: {call}.")
    elif choice == "none":
        lines.append(answer)
    else:
        lines.append(f'Call the tool {choice}: reply with only {{"name": "{choice}", "arguments": {{...}}}}.')
    return "\n".join(lines)


def with_instructions(prompt: Prompt, text: str) -> Prompt:
    """The prompt with ``text`` added to its system turn (a new first turn when it has none)."""
    if prompt.messages is None:
        return Prompt(text=f"{text}\n\n{prompt.text or ''}")
    messages = list(prompt.messages)
    if messages and messages[0].role == "system":
        messages[0] = messages[0].model_copy(update={"content": f"{messages[0].content}\n\n{text}"})
    else:
        messages.insert(0, Message(role="system", content=text))
    return Prompt(messages=tuple(messages))


def read_action(tools: Sequence[ToolSpec], choice: str, *, native: bool) -> Reader:
    """A reader of replies that must be a valid action for ``tools`` and ``tool_choice``."""
    by_name = {t.name: t for t in tools}

    def call(call_id: str, name: Any, arguments: Any) -> Action | Invalid:
        if name not in by_name:
            return Invalid(f"the reply calls {name!r}, which is not one of the tools {sorted(by_name)}")
        if choice == "none" or choice not in ("auto", "required", name):
            return Invalid(f"the reply calls {name!r}, but tool_choice is {choice!r}")
        if not isinstance(arguments, dict):
            return Invalid(f"the arguments of {name!r} are not a JSON object")
        problem = validation_problem(arguments, by_name[name].function.parameters)
        if problem is not None:
            return Invalid(f"the arguments of {name!r} do not fit its schema ({problem})")
        return Action(kind="call", id=call_id, name=str(name), arguments=arguments)

    def text(answer: str) -> Action | Invalid:
        if choice != "auto" and choice != "none":
            return Invalid(f"the reply is a text answer, but tool_choice is {choice!r}")
        return Action(kind="text", text=answer)

    def read(c: Completion) -> Action | Invalid:
        if c.tool_calls:
            first = c.tool_calls[0]
            try:
                arguments = json.loads(first.function.arguments or "{}")
            except json.JSONDecodeError as exc:
                return Invalid(f"the arguments of {first.function.name!r} are not JSON: {exc.msg}")
            return call(first.id, first.function.name, arguments)
        if native:
            return text(c.text) if c.text.strip() else Invalid("the reply has neither tool calls nor text")
        value = _json(c)
        if isinstance(value, Invalid):
            return value
        if isinstance(value, dict) and set(value) == {"answer"} and isinstance(value["answer"], str):
            return text(value["answer"])
        if isinstance(value, dict) and "name" in value:
            return call("", value["name"], value.get("arguments", {}))
        return Invalid(f"the reply is neither a call nor an answer: {c.text[:120]!r}")

    return read


def _tools(value: Any, location: str) -> list[ToolSpec]:
    try:
        return [t if isinstance(t, ToolSpec) else ToolSpec.model_validate(t) for t in value or ()]
    except (ValueError, TypeError) as exc:
        raise StepError(f"`tools:` of act is not a list of tool specs: {exc}", location=location) from None


def _call_id(path: tuple[str, ...], seed: int | None, index: int, prompt: str) -> str:
    """A call id that repeats with the run, but differs between turns of one conversation (the prompt differs)."""
    digest = hashlib.sha256(f"{'/'.join(path)}|{seed}|{index}|{prompt}".encode()).hexdigest()
    return f"call_{digest[:24]}"


async def run_act(ex: Executor, state: RecipeState, node: act_step.Act, frame: Frame, path: tuple[str, ...],
                  bodies: dict[str, Plan]) -> Any:
    """`act PROMPT (tools: T, ...)`: ``n`` actions, each a valid call of one of the tools or a text answer."""
    caller, location, what = state.caller, str(node.span), "/".join(path)
    backend, defaults = await caller.backend(node.using, frame.lookup)
    opts = with_defaults(act_step.PARAMS, {**defaults, **caller.args(node.args, frame.lookup)})
    tools, choice = _tools(opts.pop("tools"), location), str(opts.pop("tool_choice"))
    if choice not in act_step.TOOL_CHOICES and choice not in {t.name for t in tools}:
        raise StepError(f"tool_choice {choice!r} is neither one of {', '.join(act_step.TOOL_CHOICES)} nor the name "
                        f"of a tool", location=location)
    if not tools and choice != "none":
        raise StepError("act has no tools to call; give `tools:` a non-empty list or `tool_choice: \"none\"`",
                        location=location)
    prompt = caller.prompt(node.prompt, frame.lookup)
    request = caller.request(prompt, opts, path, act_step.PARAMS)
    native = backend.native_tools and prompt.is_chat
    if native:
        request = request.model_copy(update={"tools": tuple(tools), "tool_choice": choice})
    else:
        try:
            grammar = gbnf_for_schema(action_schema(tools, choice))
        except ValueError as exc:
            raise StepError(f"act: {exc}", location=location) from None
        request = request.model_copy(update={"prompt": with_instructions(prompt, tool_instructions(tools, choice)),
                                             "grammar": grammar})
    actions = await sample_valid(caller, backend, request, read_action(tools, choice, native=native),
                                 retries=int(opts["retries"]), what=what, location=location)
    key = prompt.canonical()
    actions = [a if a.id or a.kind != "call" else Action(kind="call", id=_call_id(path, request.seed, i, key),
                                                         name=a.name, arguments=a.arguments)
               for i, a in enumerate(actions)]
    return node.value_of(actions)
