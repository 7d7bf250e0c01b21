"""sfdsl.admission: the one admission check that serve, the Python API, LangChain and MCP share."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sfdsl
from sfdsl import Caps, InputError, OverCapError, ScriptedBackend

SOURCE = '''
recipe r(q: str, k: int = 2, tokens: int = 8, extra: int = 0) -> answer {
  prompt p = "{{ q }}"
  xs = generate p (n: k, max_tokens: tokens)
  if extra > 0 {
    more = generate p (n: extra, max_tokens: tokens)
  }
  return xs[0]
}'''


@pytest.fixture(scope="module")
def recipe() -> sfdsl.Recipe:
    return sfdsl.compile(SOURCE).recipe()


def test_admit_returns_bound_inputs_and_the_bound(recipe: sfdsl.Recipe) -> None:
    admitted = sfdsl.admit(recipe, {"q": "hi", "k": 3}, Caps(max_calls=4, max_tokens=100, max_parallel=3))
    assert admitted.inputs == {"q": "hi", "k": 3, "tokens": 8, "extra": 0}
    bound = admitted.bound
    assert (bound.calls, bound.tokens, bound.parallel) == (2, 24, 3)  # both branches of the `if` count


@pytest.mark.parametrize(("caps", "cap", "value"), [
    (Caps(max_calls=1), "max_request_calls", 2),
    (Caps(max_tokens=40), "max_request_tokens", 48),
    (Caps(max_parallel=3), "max_request_parallel", 6),
])
def test_a_bound_over_a_cap_is_an_over_cap_error_naming_cap_and_bound(recipe: sfdsl.Recipe, caps: Caps, cap: str,
                                                                       value: int) -> None:
    with pytest.raises(OverCapError) as caught:
        recipe.admit({"q": "hi", "k": 4, "extra": 2}, caps)
    assert (caught.value.cap, caught.value.bound) == (cap, value)
    assert f"{cap}=" in str(caught.value) and "'k' (4)" in str(caught.value)
    assert isinstance(caught.value, InputError)  # every face already turns InputError into a client error


def test_an_input_feeding_a_step_parameter_out_of_range_is_named(recipe: sfdsl.Recipe) -> None:
    with pytest.raises(InputError, match=r"input 'tokens' = -1 feeds `max_tokens:` at <string>:4:\d+, .*>= 1"):
        recipe.admit({"q": "hi", "tokens": -1})
    with pytest.raises(InputError, match="input 'k' = 0 feeds `n:`"):
        recipe.admit({"q": "hi", "k": 0})


def test_a_step_in_a_branch_the_inputs_rule_out_is_not_judged(recipe: sfdsl.Recipe) -> None:
    recipe.admit({"q": "hi", "extra": 0})  # `n: extra` only runs when extra > 0
    with pytest.raises(InputError, match="input 'extra' = -3"):
        sfdsl.compile(SOURCE.replace("extra > 0", "extra < 0")).recipe().admit({"q": "hi", "extra": -3})


def test_pinned_inputs_may_be_repeated_not_changed(recipe: sfdsl.Recipe) -> None:
    assert recipe.admit({"q": "hi"}, pinned={"k": 2}).inputs["k"] == 2
    assert recipe.admit({"q": "hi", "k": 2}, pinned={"k": 2}).inputs["k"] == 2
    with pytest.raises(InputError, match="'k' of 'r' is pinned to 2"):
        recipe.admit({"q": "hi", "k": 5}, pinned={"k": 2})


def test_strict_binding_refuses_text_for_numbers(recipe: sfdsl.Recipe) -> None:
    assert recipe.admit({"q": "hi", "k": "3"}).inputs["k"] == 3  # the API's lax default
    with pytest.raises(InputError, match="input 'k' must be int"):
        recipe.admit({"q": "hi", "k": "3"}, strict=True)


def test_arun_with_caps_refuses_before_any_model_call(recipe: sfdsl.Recipe) -> None:
    backend = ScriptedBackend(lambda prompt, i: "ok")
    with pytest.raises(OverCapError):
        asyncio.run(recipe.arun({"q": "hi", "k": 9}, backend=backend, caps=Caps(max_parallel=4)))
    assert backend.requests == []
    result = asyncio.run(recipe.arun({"q": "hi"}, backend=backend, caps=Caps(max_parallel=4)))
    assert result.answer == "ok" and result.bound["parallel"] == 2


def test_mcp_tools_admit_calls_under_the_serve_caps() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from sfdsl.integrations.mcp_server import recipe_tool

    recipe = sfdsl.load(Path(__file__).resolve().parent.parent / "recipes" / "mcts.sf").recipe()
    backend = ScriptedBackend(lambda prompt, i: "ok")
    tool = recipe_tool(recipe, sfdsl.Runtime(backend=backend), "mcts")
    with pytest.raises(ToolError, match="max_request_calls=256"):
        asyncio.run(tool(question="q", simulations=10_000_000))
    assert backend.requests == []
