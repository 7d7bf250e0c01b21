"""`sfrun mcp`: every recipe of a .sf file or directory as a tool of an MCP server over stdio.

A tool's input schema comes from the recipe's typed inputs (types, defaults,
required), its description from the recipe's header comment. A call runs the
recipe in-process on models loaded once for the server's lifetime and answers
with the answer as text plus structured content (``answer``, ``score``,
``abstained``, ``reason``, every returned field, ``usage``).

Example:
    $ sfrun mcp recipes --backend scripted:replies.json     # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from sfdsl.admission import SERVE_DEFAULTS
from sfdsl.errors import InputError, SfdslError
from sfdsl.inputs import bind_inputs

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from sfdsl.api import Recipe
    from sfdsl.runtime.pool import BackendPool
    from sfdsl.runtime_session import Runtime

#: Recipe input types as Python annotations (the JSON schema is derived from these).
PYTHON_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list[str],
                                "list[int]": list[int], "list[float]": list[float], "any": Any}


class Usage(BaseModel):
    """Model calls and tokens summed over every call inside the run."""

    calls: int
    prompt_tokens: int
    completion_tokens: int


class RecipeAnswer(BaseModel):
    """The structured content of a tool result."""

    answer: Any = Field(description="the recipe's answer; null when it has none")
    score: float | None = Field(description="the recipe's confidence score, when it returns one")
    abstained: bool = Field(description="whether the recipe declined to answer")
    reason: str | None = Field(description="why it abstained")
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


def tool_signature(recipe: Recipe) -> inspect.Signature:
    """The Python signature of a recipe's tool: one keyword parameter per input, with its type and default."""
    defaults = bind_inputs(recipe.ast, {}, require_all=False)
    parameters = []
    for param in recipe.ast.params:
        if param.name.startswith("_"):
            raise InputError(f"recipe '{recipe.name}': input '{param.name}' cannot be an MCP tool argument "
                             "(names starting with '_' are reserved)")
        default = defaults.get(param.name, inspect.Parameter.empty)
        parameters.append(inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=PYTHON_TYPES.get(str(param.type), Any)))
    return inspect.Signature(parameters)


def answer_text(answer: Any, *, abstained: bool, reason: str | None) -> str:
    """The answer as the text a model reads."""
    if abstained:
        return f"(abstained: {reason or 'no reason given'})"
    if answer is None:
        return "(no answer)"
    return answer if isinstance(answer, str) else json.dumps(answer, default=str)


def recipe_tool(recipe: Recipe, runtime: Runtime, name: str) -> Any:
    """An async function that runs ``recipe`` on ``runtime``'s models, shaped for ``MCPServer.add_tool``."""
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent

    async def run_recipe(**arguments: Any) -> Any:
        try:
            result = await recipe.arun(arguments, runtime=runtime, caps=SERVE_DEFAULTS)  # agents pick the inputs
        except SfdslError as exc:
            raise ToolError(str(exc)) from exc
        cost = result.cost
        structured = RecipeAnswer(
            answer=result.answer, score=result.score, abstained=result.abstained, reason=result.reason,
            outputs=result.outputs, run_id=result.run_id,
            usage=Usage(calls=cost.calls, prompt_tokens=cost.prompt_tokens, completion_tokens=cost.completion_tokens),
        )
        text = answer_text(result.answer, abstained=result.abstained, reason=result.reason)
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=structured.model_dump(mode="json"))

    returns = Annotated[CallToolResult, RecipeAnswer]
    signature = tool_signature(recipe).replace(return_annotation=returns)
    run_recipe.__signature__ = signature  # type: ignore[attr-defined]
    run_recipe.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()} | {"return": returns}
    run_recipe.__name__ = run_recipe.__qualname__ = name.replace(".", "_")
    return run_recipe


def build_server(recipes: dict[str, Recipe], runtime: Runtime) -> MCPServer:
    """An MCP server with one tool per recipe, all running on ``runtime``'s models."""
    from mcp.server.mcpserver import MCPServer

    server: MCPServer = MCPServer(
        name="sfdsl", log_level="WARNING",
        instructions="Each tool runs an sfdsl recipe (an LLM self-feedback workflow) and returns its answer, "
                     "with score, abstained and reason in the structured content.")
    for name, recipe in recipes.items():
        description = recipe.ast.doc or f"Run the sfdsl recipe {recipe.name} from {recipe.file}."
        server.add_tool(recipe_tool(recipe, runtime, name), name=name, title=recipe.name, description=description)
    return server


async def serve_stdio(recipes: dict[str, Recipe], pool: BackendPool) -> None:
    """Serve ``recipes`` over stdin/stdout until the client disconnects; then release the models."""
    from sfdsl.runtime_session import Runtime

    async with Runtime(pool=pool) as runtime:
        await build_server(recipes, runtime).run_stdio_async()


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
        asyncio.run(serve_stdio(recipes, make_pool(args)))
        return 0

    mcp.set_defaults(handler=cmd_mcp)
    return mcp
