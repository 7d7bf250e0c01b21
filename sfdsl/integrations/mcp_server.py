"""`sfrun mcp`: every recipe of a .sf file or directory as a tool of an MCP server over stdio.

A tool's description is the first paragraph of the recipe's header comment (the whole
header is in ``_meta["sfdsl/doc"]``); its input schema comes from the recipe's typed
inputs, with each input's ``#:`` doc-comment, defaults, known bounds and
``additionalProperties: false`` (``mcp_schema``). A call runs the recipe in-process on
models loaded once for the server's lifetime, reports progress (model calls made out
of the static bound) when the client asks for it, and answers through
``sfdsl.chat_replies`` like every face: the reply's text (an abstention is a
non-error result that says so) plus structured content (``answer``, ``refusal``,
``finish_reason``, ``tool_calls``, ``score``, ``abstained``, ``reason``,
``truncated``, every returned field, ``usage``). Tools are read-only; they are
open-world when a model is remote.

Example:
    $ sfrun mcp recipes --backend scripted:replies.json     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from sfdsl.admission import SERVE_DEFAULTS
from sfdsl.chat_replies import chat_reply
from sfdsl.errors import InputError, SfdslError
from sfdsl.integrations.mcp_schema import (
    check_arguments,
    input_schema,
    short_description,
    tool_signature,
)
from sfdsl.runtime.context import observe

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.tools.base import Tool

    from sfdsl.api import Recipe
    from sfdsl.runtime.pool import BackendPool
    from sfdsl.runtime.session import Runtime

__all__ = ["RecipeAnswer", "answer_text", "build_server", "load_recipes", "recipe_tool", "tool_signature"]


class Usage(BaseModel):
    """Model calls and tokens summed over every call inside the run."""

    calls: int
    prompt_tokens: int
    completion_tokens: int


class RecipeAnswer(BaseModel):
    """The structured content of a tool result."""

    answer: Any = Field(description="the recipe's answer; null when it has none")
    refusal: str | None = Field(default=None, description="why the recipe declined to answer; null when it did not")
    finish_reason: str = Field(default="stop", description="stop, length (a token limit cut the answer short) "
                                                           "or tool_calls")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, description="tool calls the recipe chose")
    score: float | None = Field(description="the recipe's confidence score, when it returns one")
    abstained: bool = Field(description="whether the recipe declined to answer")
    reason: str | None = Field(description="why it abstained")
    truncated: bool = Field(default=False, description="whether a token limit cut the answer short")
    outputs: dict[str, Any] = Field(description="every field the recipe returned")
    run_id: str
    usage: Usage


def load_recipes(path: str | Path, *, import_path: Sequence[str | Path] = ()) -> dict[str, Recipe]:
    """Every recipe of a .sf file, or of each .sf file of a directory, by tool name.

    A name declared in two files becomes ``{file stem}.{recipe}`` for both.

    Raises:
        SourceNotFoundError: when the path does not exist or a directory holds no .sf file.
        CompileError: when a file does not compile.
    """
    from sfdsl.recipe_sets import load_recipe_set

    return dict(load_recipe_set(path, separator=".", import_path=import_path))


def answer_text(answer: Any, *, abstained: bool, reason: str | None) -> str:
    """The answer as the text a model reads (``sfdsl.chat_replies``' one text)."""
    from sfdsl.runtime.results import RunResult

    return chat_reply(RunResult(run_id="", recipe="", answer=answer, abstained=abstained, reason=reason)).text


def recipe_tool(recipe: Recipe, runtime: Runtime, name: str) -> Any:
    """An async function ``f(ctx, **arguments)`` that runs ``recipe`` on ``runtime``'s models."""
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent

    async def run_recipe(sfdsl_context: Context | None = None, **arguments: Any) -> CallToolResult:
        try:
            inputs = check_arguments(recipe, arguments)
        except InputError as exc:
            raise ToolError(f"invalid arguments: {exc}") from None
        try:
            result = await _run_reporting(recipe, runtime, inputs, sfdsl_context)
        except SfdslError as exc:
            raise ToolError(str(exc)) from exc
        cost = result.cost
        reply = chat_reply(result)
        structured = RecipeAnswer(
            answer=result.answer, refusal=reply.refusal, finish_reason=reply.finish_reason,
            tool_calls=[call.model_dump() for call in reply.tool_calls], score=result.score,
            abstained=result.abstained, reason=result.reason, truncated=result.truncated,
            outputs=result.outputs, run_id=result.run_id,
            usage=Usage(calls=cost.calls, prompt_tokens=cost.prompt_tokens, completion_tokens=cost.completion_tokens),
        )
        return CallToolResult(content=[TextContent(type="text", text=reply.text)],
                              structured_content=structured.model_dump(mode="json"))

    run_recipe.__name__ = run_recipe.__qualname__ = name.replace(".", "_")
    return run_recipe


async def _run_reporting(recipe: Recipe, runtime: Runtime, inputs: dict[str, Any], ctx: Context | None) -> Any:
    """Run the recipe, reporting model calls made out of the static bound (sent only to clients that asked)."""
    if ctx is None:
        return await runtime.arun(recipe, inputs, caps=SERVE_DEFAULTS)  # agents pick the inputs: cap their cost
    total = recipe.bound(inputs).calls
    events: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
    done = 0

    def listen(event: str, fields: dict[str, Any]) -> None:
        nonlocal done
        if event == "node_finished" and fields.get("calls"):
            done += int(fields["calls"])
            events.put_nowait((done, f"{fields.get('node_id')} finished"))

    async def report() -> None:
        while (item := await events.get()) is not None:
            await ctx.report_progress(min(item[0], total), total, item[1])

    async def run() -> Any:
        try:
            with observe(listen):
                return await runtime.arun(recipe, inputs, caps=SERVE_DEFAULTS)
        finally:
            events.put_nowait(None)

    try:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(run())
            group.create_task(report())
    except* SfdslError as failed:
        raise failed.exceptions[0] from None
    return running.result()


class _AnyArguments(BaseModel):
    """The SDK's argument model for a recipe tool: it passes every argument on, to sfdsl's own checks."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def build_tool(recipe: Recipe, runtime: Runtime, name: str, *, remote: bool = False) -> Tool:
    """The MCP tool of one recipe: short description, precise schema, readable errors, hints."""
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.tools.base import Tool
    from mcp.types import CallToolResult, ToolAnnotations

    tool_signature(recipe)  # refuses reserved input names
    run = recipe_tool(recipe, runtime, name)
    returns = Annotated[CallToolResult, RecipeAnswer]
    # The SDK reads the context parameter and the output schema from the signature; the arguments it
    # passes on untouched (_AnyArguments) to sfdsl's checks, and the input schema is the recipe's own.
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("sfdsl_context", inspect.Parameter.KEYWORD_ONLY, annotation=Context)],
        return_annotation=returns)
    run.__annotations__ = {"sfdsl_context": Context, "return": returns}
    hints = ToolAnnotations(title=recipe.name, read_only_hint=True, destructive_hint=False, idempotent_hint=False,
                            open_world_hint=remote)
    tool = Tool.from_function(run, name=name, title=recipe.name, description=short_description(recipe),
                              annotations=hints, meta={"sfdsl/doc": recipe.ast.doc, "sfdsl/file": recipe.file})
    tool.fn_metadata.arg_model = _AnyArguments  # type: ignore[assignment]
    tool.parameters = input_schema(recipe)
    return tool


def build_server(recipes: dict[str, Recipe], runtime: Runtime, *, remote: bool = False) -> MCPServer:
    """An MCP server with one tool per recipe, all running on ``runtime``'s models.

    Args:
        remote: whether the models are remote (an ``openai:`` backend), for the tools' ``openWorldHint``.
    """
    from mcp.server.mcpserver import MCPServer

    from sfdsl.runtime.telemetry import own_version

    tools = [build_tool(recipe, runtime, name, remote=remote or _remote_models(recipe))
             for name, recipe in recipes.items()]
    _distinct_descriptions(tools)
    return MCPServer(
        name="sfdsl", version=own_version() or "0", log_level="WARNING", tools=tools,
        instructions="Each tool runs an sfdsl recipe (an LLM self-feedback workflow) and returns its answer, "
                     "with score, abstained and reason in the structured content.")


def _remote_models(recipe: Recipe) -> bool:
    from sfdsl.plan import collect_models

    return any(decl.backend == "openai" for decl in collect_models(recipe.ast.body).values())


def _distinct_descriptions(tools: list[Tool]) -> None:
    """Tools that would share a description (variants from one file's header) say which recipe they run."""
    seen: dict[str, int] = {}
    for tool in tools:
        seen[tool.description] = seen.get(tool.description, 0) + 1
    for tool in tools:
        if seen[tool.description] > 1:
            tool.description = f"{tool.description} (This tool runs the variant '{tool.title}'.)"


async def serve_stdio(recipes: dict[str, Recipe], pool: BackendPool, *, remote: bool = False) -> None:
    """Serve ``recipes`` over stdin/stdout until the client disconnects; then release the models."""
    from sfdsl.runtime.session import Runtime

    async with Runtime(pool=pool) as runtime:
        await build_server(recipes, runtime, remote=remote).run_stdio_async()


def add_parser(commands: Any, add_backend_options: Any, make_pool: Any) -> Any:
    """Add `sfrun mcp PATH [--backend SPEC]` to the CLI's subcommands; the new parser."""
    mcp = commands.add_parser(
        "mcp", help="serve recipes as MCP tools over stdio",
        description="Serve every recipe of PATH (a .sf file or a directory of them) as a tool of an MCP server "
                    "over stdin/stdout. Nothing but MCP messages goes to stdout; logs go to stderr.")
    mcp.add_argument("path", help=".sf file or directory of .sf files")
    add_backend_options(mcp)

    def cmd_mcp(args: Any) -> int:
        import asyncio

        try:
            import mcp.server.mcpserver  # noqa: F401
        except ImportError as exc:
            raise InputError('sfrun mcp needs the mcp extra: pip install "sfdsl[mcp]"') from exc
        recipes = load_recipes(args.path, import_path=getattr(args, "import_path", ()))
        remote = str(getattr(args, "backend", None) or "").startswith("openai")
        asyncio.run(serve_stdio(recipes, make_pool(args), remote=remote))
        return 0

    mcp.set_defaults(handler=cmd_mcp)
    return mcp
