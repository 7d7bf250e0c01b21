"""--space specs: ranges, log ranges, choices, the recipe choice, and the errors found before anything runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tune_support import RECIPES

import sfdsl
from sfdsl.tune.probe import dry_run
from sfdsl.tune.space import Config, SpaceError, parse_space, probe_space

optuna = pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

TYPES = {
    "self_consistency": {"question": "str", "n": "int", "temperature": "float", "max_tokens": "int"},
    "p_true": {"question": "str", "threshold": "float", "judge_extracted": "bool", "brainstorm": "int"},
}


def test_int_float_log_and_choices() -> None:
    space = parse_space(["n=1..32:log", "temperature=0.3..1.0", "threshold=[0.5, 0.7, 0.9]",
                         "judge_extracted=[true,false]"], TYPES)
    dims = {d.name: d for d in space.dims}
    assert (dims["n"].kind, dims["n"].low, dims["n"].high, dims["n"].log) == ("int", 1, 32, True)
    assert (dims["temperature"].kind, dims["temperature"].low, dims["temperature"].high) == ("float", 0.3, 1.0)
    assert dims["threshold"].choices == (0.5, 0.7, 0.9) and dims["threshold"].recipes == ("p_true",)
    assert dims["judge_extracted"].choices == (True, False)
    assert space.several and space.grid() is None  # a float range: infinite


def test_grid_is_per_recipe_and_conditional() -> None:
    space = parse_space(["n=1..3", "threshold=[0.5,0.9]"], TYPES)
    grid = space.grid()
    assert grid is not None
    assert [str(c) for c in grid] == ["self_consistency(n=1)", "self_consistency(n=2)", "self_consistency(n=3)",
                                      "p_true(threshold=0.5)", "p_true(threshold=0.9)"]


def test_optuna_trials_sample_only_the_chosen_recipes_inputs() -> None:
    space = parse_space(["n=1..4", "threshold=[0.5,0.9]"], TYPES)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        config = space.suggest(trial)
        assert set(trial.params) == {"recipe", *config.inputs}
        assert space.from_params(trial.params) == config
        seen.add(config.recipe)
        study.tell(trial, [0.5, 1.0])
    assert seen == {"self_consistency", "p_true"}


def test_single_recipe_has_no_recipe_choice() -> None:
    space = parse_space(["n=2..5"], {"self_consistency": TYPES["self_consistency"]})
    assert not space.several and Config("self_consistency", {"n": 3}).params(False) == {"n": 3}


@pytest.mark.parametrize(("specs", "message"), [
    (["nn=1..4"], "no recipe has an input 'nn'"),
    (["n=1.5..4"], "int input, so its range needs int ends"),
    (["judge_extracted=0..1"], "a bool input; a range needs an int or float input"),
    (["temperature=[0.5,hot]"], "'hot' is not a valid float"),
    (["n=4..1"], "from a lower to a higher number"),
    (["temperature=0..1:log"], "a log range must start above 0"),
    (["n=1..4", "n=[1,2]"], "given twice"),
    (["n"], "expects NAME=LOW..HIGH"),
    (["n=1-4"], "expected LOW..HIGH"),
    (["recipe=[a,b]"], "the recipe choice comes from the recipes given"),
    (["max_tokens=[8,16]"], "also fixed with -i"),
    (["question=[a,b]"], "fed from the data"),
])
def test_invalid_space_is_a_clear_error(specs: list[str], message: str) -> None:
    with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_space(specs, TYPES, fixed={"max_tokens": "8"}, columns=["question"])


@pytest.mark.parametrize(("spec", "refused"), [
    ("n=0..8", "n=0"),
    ("temperature=-0.5..1.0", "temperature=-0.5"),
    ("max_tokens=[64,0]", "max_tokens=0"),
])
def test_values_the_recipe_refuses_are_errors(spec: str, refused: str) -> None:
    """A range end or a choice that a step of the recipe refuses fails a dry run on the stand-in model."""
    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")

    async def probe(label: str, inputs: dict[str, Any]) -> None:
        await dry_run(recipe, {"question": "What is 2 + 2?", **inputs})

    types = {"self_consistency": TYPES["self_consistency"]}
    asyncio.run(probe_space(parse_space(["n=1..8", "temperature=0.1..1.0"], types), probe))  # accepted
    name, value = refused.split("=")
    with pytest.raises(SpaceError, match=rf"self_consistency refuses {refused}: .*self_consistency\.sf:\d+:\d+: "
                                         rf"parameter '{name}' is {value}, but must be"):
        asyncio.run(probe_space(parse_space([spec], types), probe))
