"""A recipe seen as a model: the backend behind `sfrun serve`, which exposes recipes to OpenAI clients.

A chat or completion request becomes one recipe run per sample: the last user
message (or the completion prompt) feeds the recipe's text input, sample ``i``
runs with seed ``seed + i``, and the recipe's answer is the completion text.
Scoring text is not something a recipe does, so ``score`` raises BackendError.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sfdsl.errors import BackendError, InputError, SfdslError
from sfdsl.runtime.backends.base import Backend, Completion, GenerateRequest, Prompt, ScoreRequest, SequenceScore

if TYPE_CHECKING:
    from sfdsl.api import Recipe
    from sfdsl.runtime.pool import BackendPool


class RecipeBackend(Backend):
    """Runs ``recipe`` for each requested sample, on the models of ``pool``."""

    def __init__(self, recipe: Recipe, pool: BackendPool, *, input_name: str | None = None,
                 inputs: dict[str, Any] | None = None) -> None:
        self.recipe = recipe
        self.pool = pool
        self.inputs = dict(inputs or {})
        self.input_name = input_name or _text_input(recipe)
        self.model_id = f"recipe:{recipe.name}:{recipe.fingerprint[:12]}"

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        text = _user_text(request.prompt)
        base_seed = request.seed or 0

        async def one(i: int) -> Completion:
            try:
                result = await self.recipe.arun({**self.inputs, self.input_name: text}, backend=self.pool,
                                                 seed=base_seed + i)
            except SfdslError as exc:
                raise BackendError(f"recipe {self.recipe.name} failed: {exc}") from exc
            shown = f"(abstained: {result.reason})" if result.abstained else "" if result.answer is None \
                else str(result.answer)
            return Completion(text=shown, completion_tokens=result.cost.completion_tokens,
                              prompt_tokens=result.cost.prompt_tokens, finish_reason="eos", index=i)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(request.n)]
        return [t.result() for t in tasks]

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        raise BackendError(f"recipe {self.recipe.name} generates answers; it cannot score text")

    async def aclose(self) -> None:
        await self.pool.aclose()


def _text_input(recipe: Recipe) -> str:
    for name, type_name, _ in recipe.params:
        if type_name == "str":
            return name
    raise InputError(f"recipe '{recipe.name}' has no str input to take the user's message")


def _user_text(prompt: Prompt) -> str:
    if prompt.messages is None:
        return prompt.text or ""
    users = [m.content for m in prompt.messages if m.role == "user"]
    return users[-1] if users else prompt.messages[-1].content
