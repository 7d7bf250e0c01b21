"""Admission of requests: inputs bound strictly, pins held, sizes and the static bound checked, off the event loop.

Every request's inputs are bound and its worst-case cost bounded before it takes a run
slot, with ``sfdsl.admission.admit`` (the check the Python API, LangChain and MCP share).
That work is CPU-bound, so it runs on a small thread pool of its own: the event loop keeps
answering (``/health`` included) while a big request is checked. A request fails with a 400
naming the input or the cap:

* ``invalid_input``: an unknown or mistyped input (no coercion: ``"0.5"`` is not a float);
* ``input_pinned``: a value for an input the operator pinned (``--pin-input``);
* ``input_too_long``: a text input longer than ``max_input_chars``;
* ``over_cap``: a bound over ``--max-request-calls``, ``--max-request-tokens`` or ``--max-request-parallel``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sfdsl.admission import Admitted, Caps
from sfdsl.errors import CompileError, InputError, OverCapError
from sfdsl.inputs import bind_inputs
from sfdsl.serve.config import ServeConfig
from sfdsl.serve.protocol import HTTPError
from sfdsl.serve.registry import RecipeRegistry, ServedRecipe

#: Threads that bind and bound requests; more requests wait for one (their time counts against the timeout).
ADMISSION_THREADS = 2


class Admission:
    """The admission check of one app: caps, default and pinned inputs by recipe, and its thread pool."""

    def __init__(self, registry: RecipeRegistry, config: ServeConfig) -> None:
        self.config = config
        self.caps = Caps(max_calls=config.max_request_calls, max_tokens=config.max_request_tokens,
                         max_parallel=config.max_request_parallel)
        self.defaults = text_inputs(registry, config.inputs, flag="-i")
        self.pinned = text_inputs(registry, config.pinned, flag="--pin-input")
        self._threads: ThreadPoolExecutor | None = None
        self.models = {served.name: self._describe(served) for served in registry}  # at start-up, not per request

    def check(self, served: ServedRecipe, given: dict[str, Any]) -> Admitted:
        """Bind a request's inputs and admit the run (blocking: call it off the loop, see ``acheck``).

        Raises:
            HTTPError: a 400 naming the input or the cap.
        """
        name = served.name
        try:
            self._check_sizes(served, given)
            return served.recipe.admit({**self.defaults.get(name, {}), **given}, self.caps,
                                       pinned=self.pinned.get(name), strict=True)
        except OverCapError as exc:
            raise HTTPError(400, str(exc), code="over_cap", param=exc.cap,
                            extra={"cap": exc.cap, "limit": exc.limit, "bound": exc.bound}) from None
        except InputError as exc:
            code = "input_pinned" if "is pinned to" in str(exc) else "invalid_input"
            raise HTTPError(400, str(exc), code=code) from None
        except CompileError as exc:
            raise HTTPError(400, f"cannot bound a run of '{name}' with these inputs: {exc}",
                            code="unbounded_input") from None

    async def acheck(self, served: ServedRecipe, given: dict[str, Any]) -> Admitted:
        """``check`` on the admission threads, within the request timeout (504 past it)."""
        loop = asyncio.get_running_loop()
        if self._threads is None:
            self._threads = ThreadPoolExecutor(ADMISSION_THREADS, thread_name_prefix="sfdsl-admit")
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await loop.run_in_executor(self._threads, self.check, served, given)
        except TimeoutError:
            raise HTTPError(504, f"checking the request for '{served.name}' took over {self.config.timeout_s:g}s",
                            type="timeout_error", code="timeout") from None

    def _check_sizes(self, served: ServedRecipe, given: dict[str, Any]) -> None:
        limit = self.config.max_input_chars
        for key, value in given.items():
            size = len(value) if isinstance(value, str) else sum(len(v) for v in value if isinstance(v, str)) \
                if isinstance(value, list) else 0
            if size > limit:
                raise InputError(f"input '{key}' of '{served.name}' holds {size} characters, over this server's "
                                 f"limit of {limit} (max_input_chars)")

    def _describe(self, served: ServedRecipe) -> dict[str, Any]:
        """What /v1/models shows of a recipe: its bound with default and pinned inputs, under the caps."""
        inputs = {**self.defaults.get(served.name, {}), **self.pinned.get(served.name, {})}
        try:
            bound = served.recipe.bound(inputs)
        except (CompileError, InputError) as exc:
            return {"bound": None, "bound_error": str(exc).splitlines()[0], "caps": self.caps.as_dict()}
        return {"bound": {"calls": bound.calls, "tokens": bound.tokens, "parallel": bound.parallel},
                "caps": self.caps.as_dict(), "within_caps": not self.caps.over(bound),
                "pinned": sorted(self.pinned.get(served.name, {}))}

    def close(self) -> None:
        """Stop the admission threads (work already running finishes on its own)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None


def text_inputs(registry: RecipeRegistry, given: dict[str, Any], *, flag: str) -> dict[str, dict[str, Any]]:
    """Operator inputs (``-i``/``--pin-input key=value`` text) by served recipe, typed for each that declares them.

    Raises:
        InputError: for an input no served recipe declares, or a value of the wrong type.
    """
    unused = set(given)
    typed: dict[str, dict[str, Any]] = {}
    for served in registry:
        names = {name for name, _ in served.params}
        mine = {k: v for k, v in given.items() if k in names}
        unused -= set(mine)
        typed[served.name] = {k: v for k, v in bind_inputs(served.recipe.ast, mine, from_text=True,
                                                            require_all=False).items() if k in mine}
    if unused:
        raise InputError(f"{flag}: no served recipe has input(s) {', '.join(sorted(unused))}")
    return typed
