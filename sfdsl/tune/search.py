"""The search: an Optuna study in SQLite proposes configurations; each is raced on the dev items.

The study lives in ``DIR/study.sqlite`` and every result in the eval store ``DIR/results.sqlite``, so a
killed ``tune`` resumes: finished trials are read back (their results come from the store, with no model
call), a trial that was running is finished in place, and the search goes on where it stopped. Proposals
depend only on the stored history (the sampler is reseeded from ``--seed`` and the trial number before each
proposal), so a resumed search proposes what an uninterrupted one would have.

When the space is finite and no larger than ``--trials``, every configuration is enqueued once, cheapest
static bound first; otherwise Optuna's multi-objective TPE sampler proposes them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sfdsl.errors import SfdslError
from sfdsl.eval.data import Row
from sfdsl.eval.paired import item_accuracy
from sfdsl.eval.store import ItemRecord
from sfdsl.log import get_logger
from sfdsl.tune.goals import Constraint, Objective
from sfdsl.tune.racing import item_costs, rival_records, rungs, stop_reason
from sfdsl.tune.space import Config, Space
from sfdsl.tune.trials import Evaluator

log = get_logger("sfdsl.tune")

STUDY_FILE = "study.sqlite"

T = TypeVar("T")

class TuneError(SfdslError):
    """Raised when a search cannot run (the ``tune`` extra, Optuna, is not installed)."""


def import_optuna() -> Any:
    """The ``optuna`` module, or a :class:`TuneError` naming the extra to install."""
    try:
        import optuna
    except ImportError as exc:
        raise TuneError("sfrun tune needs the tune extra: pip install 'sfdsl[tune]'") from exc
    return optuna


#: Proposals per counted trial before the search gives up finding new configurations.
MAX_ASKS_PER_TRIAL = 10


@dataclass
class TrialOutcome:
    """What became of one proposed configuration.

    ``state`` is ``complete`` (ran on every dev item), ``stopped`` (left the race, ``reason`` says why),
    ``skipped`` (its static bound breaks the cost constraint; it never ran) or ``repeat`` (proposed again).
    """

    number: int
    config: Config
    state: str
    items: int = 0
    accuracy: float | None = None
    cost: float | None = None
    reason: str | None = None
    bound: dict[str, int] | None = None


@dataclass
class SearchOutcome:
    """Every trial, and each distinct configuration's dev records (as far as it ran)."""

    trials: list[TrialOutcome] = field(default_factory=list)
    records: dict[str, list[ItemRecord]] = field(default_factory=dict)
    configs: dict[str, Config] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(t.state == "skipped" for t in self.trials)

    def complete(self) -> list[Config]:
        """Configurations that ran on every dev item, in trial order."""
        seen: dict[str, Config] = {}
        for t in self.trials:
            if t.state == "complete":
                seen.setdefault(t.config.key, t.config)
        return list(seen.values())


@dataclass
class Search:
    """One tune search over ``space`` on the ``dev`` rows.

    Attributes:
        trials: Configurations to run (skipped and repeated proposals do not count).
        first_rung: Dev items of the first racing rung.
        signature: Identity of the search (space, recipes, data, goals); a study per signature.
        logger: Receives one ``tune_trial_finished`` event per trial (default: the ``sfdsl.tune`` logger).
    """

    space: Space
    evaluator: Evaluator
    dev: Sequence[Row]
    objective: Objective
    constraints: Sequence[Constraint]
    trials: int
    seed: int
    out: Path
    first_rung: int
    signature: str
    logger: Any = None
    outcome: SearchOutcome = field(default_factory=SearchOutcome)
    _thread: Any = None
    _storage: Any = None

    async def run(self) -> SearchOutcome:
        """Run (or resume) the search until ``trials`` configurations ran or the space is used up."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sfdsl-tune-study") as thread:
            self._thread = thread
            return await self._run()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an Optuna call off the event loop, always on the same thread (Optuna caches trials per thread)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    async def _run(self) -> SearchOutcome:
        study = await self._call(self._study)
        finished, running = await self._call(_split_trials, study)
        for frozen in finished:
            await self._replay(frozen)
        for frozen in running:
            await self._resume(study, frozen)
        grid = self.space.grid()
        asks = 0
        while self._counted() < self.trials and asks < MAX_ASKS_PER_TRIAL * self.trials:
            if grid is not None and all(c.key in self.outcome.configs or self._was_skipped(c) for c in grid):
                break
            asks += 1
            trial = await self._call(self._ask, study)
            config = self.space.suggest(trial)
            await self._finish(study, trial.number, trial._trial_id, config)
        return self.outcome

    # ------------------------------------------------------------ the study

    def _study(self) -> Any:
        import optuna

        storage = self._storage = optuna.storages.RDBStorage(
            f"sqlite:///{(self.out / STUDY_FILE).resolve()}", engine_kwargs={"connect_args": {"timeout": 30}}
        )
        study = optuna.create_study(study_name=f"tune-{self.signature}", storage=storage, load_if_exists=True,
                                    directions=["maximize", "minimize"], sampler=self._sampler(0))
        if not study.user_attrs.get("enqueued"):
            grid = self.space.grid()
            if grid is not None and len(grid) <= self.trials:
                for config in self._cheapest_first(grid):
                    study.enqueue_trial(config.params(self.space.several))
            study.set_user_attr("enqueued", True)
        return study

    def _cheapest_first(self, grid: list[Config]) -> list[Config]:
        rng = random.Random(self.seed)
        shuffled = list(grid)
        rng.shuffle(shuffled)

        def worst(config: Config) -> tuple[float, float]:
            bound = self.evaluator.bound(config)
            return (math.inf, math.inf) if bound is None else (bound.tokens, bound.calls)

        return sorted(shuffled, key=worst)

    def _sampler(self, count: int) -> Any:
        import optuna

        seed = int(hashlib.sha256(f"{self.seed}:{count}".encode()).hexdigest()[:8], 16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=max(2, min(10, self.trials // 3)))

    def _ask(self, study: Any) -> Any:
        """A new trial, proposed from the stored history only: a fresh view of the study (Optuna's study object
        caches trials), with the sampler reseeded from the seed and the count of finished trials."""
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        finished = len(study.get_trials(deepcopy=False, states=states))  # a trial failed by a kill does not count
        fresh = optuna.load_study(study_name=study.study_name, storage=self._storage,
                                  sampler=self._sampler(finished))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fresh.ask()

    # ------------------------------------------------------------ trials

    def _counted(self) -> int:
        return sum(t.state in ("complete", "stopped") for t in self.outcome.trials)

    def _was_skipped(self, config: Config) -> bool:
        return any(t.state == "skipped" and t.config.key == config.key for t in self.outcome.trials)

    async def _replay(self, frozen: Any) -> None:
        """A trial finished before this process: its records come back from the store."""
        attrs = frozen.user_attrs
        config = self.space.from_params(frozen.params)
        state = str(attrs.get("state", "complete"))
        outcome = TrialOutcome(frozen.number, config, state, int(attrs.get("items", 0)),
                               attrs.get("accuracy"), attrs.get("cost"), attrs.get("reason"), attrs.get("bound"))
        if state in ("complete", "stopped") and config.key not in self.outcome.configs:
            records = await self.evaluator.evaluate(config, self.dev[: outcome.items])
            self._remember(config, records)
        self.outcome.trials.append(outcome)

    async def _resume(self, study: Any, frozen: Any) -> None:
        """A trial that was running when the search was killed: finish it (stored items are not rerun)."""
        try:
            config = self.space.from_params(frozen.params)
            complete = set(self.space.distributions(config.recipe)) <= set(frozen.params)
        except KeyError:
            complete = False
        if not complete:  # killed between the proposal and its parameters: nothing ran
            import optuna

            await self._call(study.tell, frozen.number, state=optuna.trial.TrialState.FAIL)
            fixed = frozen.system_attrs.get("fixed_params")
            if fixed:  # an enqueued configuration goes back in the queue
                await self._call(study.enqueue_trial, fixed)
            return
        await self._finish(study, frozen.number, frozen._trial_id, config)

    async def _finish(self, study: Any, number: int, trial_id: int, config: Config) -> None:
        import optuna

        outcome = await self._trial(number, config)
        self.outcome.trials.append(outcome)
        attrs = {"state": outcome.state, "items": outcome.items, "accuracy": outcome.accuracy,
                 "cost": outcome.cost, "reason": outcome.reason, "bound": outcome.bound, "config": str(config)}

        def tell() -> None:
            for key, value in attrs.items():
                self._storage.set_trial_user_attr(trial_id, key, value)
            if outcome.state == "skipped":
                study.tell(number, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(number, [outcome.accuracy or 0.0, outcome.cost or 0.0])

        await self._call(tell)
        (self.logger or log).info("tune_trial_finished", trial=number, config=str(config), state=outcome.state,
                                  items=outcome.items, accuracy=outcome.accuracy, cost=outcome.cost,
                                  reason=outcome.reason)

    async def _trial(self, number: int, config: Config) -> TrialOutcome:
        """Race one configuration: skip it on its bound, else grow its items rung by rung."""
        bound = self.evaluator.bound(config)
        shown = None if bound is None else {"calls": bound.calls, "tokens": bound.tokens}
        if config.key in self.outcome.configs:
            earlier = next(t for t in self.outcome.trials if t.config.key == config.key)
            return TrialOutcome(number, config, "repeat", earlier.items, earlier.accuracy, earlier.cost,
                                f"same as trial {earlier.number}", shown)
        broken = [c for c in self.constraints if bound is not None and c.bound_exceeds(bound.calls, bound.tokens)]
        if broken and bound is not None:
            return TrialOutcome(number, config, "skipped", reason=f"static bound {bound} breaks {broken[0]}",
                                bound=shown)
        schedule = rungs(len(self.dev), self.first_rung)
        records: list[ItemRecord] = []
        reason = None
        for m in schedule:
            records = await self.evaluator.evaluate(config, self.dev[:m])
            if m == schedule[-1]:
                break
            ids = {r.item_id for r in records}
            reason = stop_reason(records, rival_records(self._named_records(), ids),
                                 cost_field=self.objective.field, constraints=self.constraints, seed=self.seed)
            if reason:
                break
        self._remember(config, records)
        accuracy, cost = self._values(records)
        state = "stopped" if reason else "complete"
        return TrialOutcome(number, config, state, len({r.item_id for r in records}), accuracy, cost, reason, shown)

    def _values(self, records: Sequence[ItemRecord]) -> tuple[float, float]:
        per_item = item_accuracy(records)
        costs = item_costs(records, self.objective.field)
        accuracy = sum(per_item.values()) / len(per_item) if per_item else 0.0
        return accuracy, (sum(costs) / len(costs) if costs else 0.0)

    def _remember(self, config: Config, records: list[ItemRecord]) -> None:
        self.outcome.configs[config.key] = config
        self.outcome.records[config.key] = records

    def _named_records(self) -> dict[str, list[ItemRecord]]:
        return {str(self.outcome.configs[k]): v for k, v in self.outcome.records.items()}


def _split_trials(study: Any) -> tuple[list[Any], list[Any]]:
    """(finished trials, running ones), in trial order; failed and waiting trials are left out."""
    import optuna

    states = optuna.trial.TrialState
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    running = [t for t in trials if t.state == states.RUNNING]
    return finished, running


def signature(**parts: Any) -> str:
    """A short hash naming one search (space, recipes, data, goals, split, seed)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
