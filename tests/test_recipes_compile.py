"""Every recipe in recipes/ compiles, and its plan matches a golden dump.

The golden file tests/golden/recipes/<name>.plan.txt holds, for each recipe of
the file, `sfdsl.plan.dump(recipe.plan)` and its static cost bound at the
default inputs. Regenerate after an intended change with
`SFDSL_UPDATE_GOLDEN=1 python -m pytest tests/test_recipes_compile.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import sfdsl
from tests.conftest import golden_text

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
GOLDEN = Path(__file__).parent / "golden" / "recipes"
EXPECTED = [
    "best_of_n", "chain_of_thought", "chat", "confidence_critique", "iterative_deepening", "mcts", "p_true",
    "self_check", "self_consistency", "semantic_entropy", "self_familiarity", "self_judge", "self_refine",
    "step_correction", "adaptive_router",
    "tree_of_thoughts", "universal_self_consistency", "untargeted_refine",
    "agent_step", "json_vote", "tool_vote", "verify_then_act",
]
NAMES = sorted(p.stem for p in RECIPES.glob("*.sf"))


def test_the_library_has_every_recipe() -> None:
    assert sorted(EXPECTED) == NAMES


#: Warnings a recipe keeps on purpose: self_familiarity caps the concepts it checks at `max_concepts` (SF910).
INTENDED_WARNINGS = {"self_familiarity": ["SF910"]}


@pytest.mark.parametrize("name", NAMES)
def test_recipe_compiles_without_warnings(name: str) -> None:
    program = sfdsl.load(RECIPES / f"{name}.sf")
    assert [w.code for w in program.warnings] == INTENDED_WARNINGS.get(name, [])
    assert program.recipe().name == name  # the main (last) recipe is named after its file


@pytest.mark.parametrize("name", NAMES)
def test_recipe_plan_matches_golden(name: str) -> None:
    text = golden_text(RECIPES / f"{name}.sf")
    golden = GOLDEN / f"{name}.plan.txt"
    if os.environ.get("SFDSL_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden dump for {name}; run with SFDSL_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_header_documents_the_recipe(name: str) -> None:
    """The header names a paper (arXiv id), inputs, outputs, defaults and the current cost bound."""
    source = (RECIPES / f"{name}.sf").read_text(encoding="utf-8")
    header = "\n".join(line[1:].strip() for line in source.splitlines() if line.startswith("#"))
    assert source.startswith("#")
    assert re.search(r"arXiv \d{4}\.\d{4,5}", header)
    for section in ("Inputs:", "Outputs:", "Cost bound (sfrun check, defaults)"):
        assert section in header, f"{name}: header lacks {section!r}"
    program = sfdsl.load(RECIPES / f"{name}.sf")
    flat = " ".join(header.split())
    bound = program.recipe().bound()
    assert f"≤ {bound.calls} model calls" in flat and f"≤ {bound.tokens} generated tokens" in flat, \
        f"{name}: header bound is stale; now {bound}"


def test_readme_lists_every_recipe_with_its_command() -> None:
    readme = (RECIPES / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"sfrun run recipes/{name}.sf" in readme, name
        bound = sfdsl.load(RECIPES / f"{name}.sf").recipe().bound()
        assert f"{bound.calls} calls, {bound.tokens} tokens" in readme, name
