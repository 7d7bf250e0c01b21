"""Running one tune configuration on dataset rows through the eval store, so each result is computed once.

A configuration's run key is the one ``sfrun eval`` gives the same recipe with the same inputs fixed
(``-i``/``--inputs-json``): a result stored by ``tune`` is a result of ``eval``, and the other way round.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfdsl.bounds import Bound
from sfdsl.errors import InputError
from sfdsl.eval.data import Item, Row, build_items, coerce
from sfdsl.eval.glue import Target, Warmup, resolve_models
from sfdsl.eval.metrics import Matcher
from sfdsl.eval.runner import EvalSpec, make_run_key, run_eval
from sfdsl.eval.store import ItemRecord, ResultStore
from sfdsl.tune.space import Config

#: The file in the tune directory remembering each recipe's model ids, so a resumed run needs no warm-up call.
MODELS_FILE = "models.json"


@dataclass(frozen=True)
class Judging:
    """How results are mapped and judged, as ``sfrun eval`` takes it from its flags.

    Attributes:
        metric: Metric name (part of the run key).
        matcher: The correctness function.
        gold: Gold-answer column.
        field_map: ``input -> column`` mappings (``--field``).
        fixed: Inputs fixed with ``-i``/``--inputs-json``, raw or typed.
        first_key: Output key of a first-turn answer.
        seed: Base seed.
        limits: Per-item budget (``max_calls``, ``max_tokens``, ``timeout_s``).
        source: Dataset name for messages.
        store_version: ``sfdsl.eval.cli.STORE_VERSION``.
        item_timeout: Backstop seconds per item (None: none).
    """

    metric: str
    matcher: Matcher
    gold: str = "answer"
    field_map: Mapping[str, str] | None = None
    fixed: Mapping[str, Any] | None = None
    first_key: str = "first"
    seed: int = 0
    limits: Mapping[str, Any] | None = None
    source: str = "data"
    store_version: int = 1
    item_timeout: float | None = None


def fixed_for(target: Target, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed inputs a recipe declares, converted to its types (the others belong to other recipes)."""
    types = target.input_types
    return {k: coerce(v, types.get(k), where=f"-i {k}") for k, v in fixed.items() if k in types}


class Evaluator:
    """Runs configurations of the tuned recipes on rows, reading finished (config, item) results from the store."""

    def __init__(self, targets: Mapping[str, Target], judging: Judging, store: ResultStore, *,
                 backend: Any, state_dir: Path, identity: str = "", concurrency: int = 8,
                 remote: Any = None, logger: Any = None) -> None:
        self.targets, self.judging, self.store = dict(targets), judging, store
        self.backend, self.remote, self.logger = backend, remote, logger
        self.concurrency = concurrency
        self._models_path = state_dir / MODELS_FILE
        self._identity = identity
        self._runs: dict[str, Any] = {}
        self.fresh = 0  # (item, sample) results computed by this process

    def fixed_for(self, label: str) -> dict[str, Any]:
        """The ``-i`` inputs recipe ``label`` declares, converted to its types."""
        return fixed_for(self.targets[label], self.judging.fixed or {})

    def inputs(self, config: Config) -> dict[str, Any]:
        """Every input a configuration fixes: the ``-i`` ones it declares, then its searched ones."""
        return {**self.fixed_for(config.recipe), **config.inputs}

    def items(self, config: Config, rows: Sequence[Row]) -> list[Item]:
        """The rows as items of this configuration (its fixed inputs included, as ``sfrun eval`` builds them)."""
        target, j = self.targets[config.recipe], self.judging
        return build_items(rows, input_types=target.input_types, required=target.required,
                           field_map=j.field_map, gold=j.gold, fixed=self.inputs(config), source=j.source)

    def bound(self, config: Config) -> Bound | None:
        """The static worst case of one item run with this configuration (None when the recipe has no plan)."""
        recipe = self.targets[config.recipe].recipe
        return None if recipe is None else recipe.bound(self.inputs(config))

    async def evaluate(self, config: Config, rows: Sequence[Row]) -> list[ItemRecord]:
        """The configuration's records on these rows, running only the (item, sample) pairs not yet stored."""
        items = self.items(config, rows)
        run, models = await self._runner(config.recipe, items)
        spec = self._spec(config, models)
        outcome = await run_eval(items, run, spec, store=self.store, concurrency=self.concurrency,
                                 logger=self.logger)
        self.fresh += outcome.new
        return outcome.records

    def _spec(self, config: Config, models: str) -> EvalSpec:
        target, j = self.targets[config.recipe], self.judging
        parts = {
            "version": j.store_version,
            "recipe": target.label,
            "fingerprint": target.fingerprint,
            "models": models,
            "metric": j.metric,
            "first_key": j.first_key,
            "seed": j.seed,
            "limits": dict(j.limits or {}),
            "fixed_inputs": self.inputs(config),
        }
        spec = EvalSpec(run_key=make_run_key(**parts), label=target.label, matcher=j.matcher,
                        first_key=j.first_key, seed=j.seed, item_timeout=j.item_timeout)
        self.store.register_run(spec.run_key, spec.label, {**parts, "source": "tune"})
        return spec

    async def _runner(self, label: str, items: Sequence[Item]) -> tuple[Any, str]:
        """The recipe's item runner (one per recipe) and its model ids, resolved once and remembered."""
        target = self.targets[label]
        if label not in self._runs:
            self._runs[label] = Warmup(target.run_item) if self.remote is None else self.remote.for_target(target)
        run = self._runs[label]
        known = await asyncio.to_thread(self._read_models)
        key = f"{self._identity}|{label}|{target.fingerprint}"
        if key in known:
            return run, known[key]
        if not items:
            raise InputError(f"no items to run {label} on")
        if self.remote is None:
            models = await resolve_models(target, self.backend, run, list(items), self.judging.seed)
        else:
            models = await run.model_ids(list(items), self.judging.seed)
        known[key] = models
        await asyncio.to_thread(self._write_models, known)
        return run, models

    def _read_models(self) -> dict[str, str]:
        try:
            data = json.loads(self._models_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_models(self, known: dict[str, str]) -> None:
        tmp = self._models_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self._models_path)
