"""Token streaming: which generation of a recipe streams its text, and the per-run sink it streams to.

A run streams tokens only when its answer *is* a single sample of one ``generate``:
the recipe's top-level ``return`` gives (as ``answer``) a name assigned once, at the
top level, from a ``generate`` step without ``n``. Any other answer (a vote, an
extraction, a refined iterate) is known only at the end, so nothing streams.

The sink is a plain callable that receives text pieces in order; their concatenation
is the generated text. It is carried by the run's ``RunContext`` and called in the
run's event loop.

Example:
    >>> import sfdsl
    >>> program = sfdsl.compile('''
    ... recipe chat(q: str) -> answer {
    ...   prompt p = "{{ q }}"
    ...   reply = generate p (max_tokens: 8)
    ...   return reply
    ... }''')
    >>> streamed_generate(program.recipe().ast) is not None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sfdsl import ast

#: Receives the streamed answer's text, piece by piece, in order.
TokenSink = Callable[[str], None]


def streamed_generate(recipe: ast.RecipeDecl) -> Any | None:
    """The ``generate`` node whose single sample is the recipe's answer, or None when no generation is."""
    statements = list(_top_level(recipe.body))
    returns = [s for s in statements if getattr(s, "stmt", None) == "return"]
    if len(returns) != 1 or any(getattr(s, "stmt", None) in ("if", "abstain") for s in statements):
        return None
    name = _answer_name(returns[0])
    if name is None:
        return None
    writers = [s for s in statements if getattr(s, "stmt", None) == "assign" and s.target == name]
    if len(writers) != 1:
        return None
    value = writers[0].value
    if getattr(value, "kind", None) != "generate" or value.returns_list:
        return None
    return value


def _top_level(block: ast.Block) -> Iterator[Any]:
    yield from block.stmts


def _answer_name(stmt: ast.Return) -> str | None:
    value: Any = stmt.value
    if stmt.fields is not None:
        field = next((f for f in stmt.fields if f.name == "answer"), None)
        value = field.value if field is not None else None
    return value.id if isinstance(value, ast.Name) else None


class TextDeltas:
    """Turns a growing text into the new pieces since the last call, holding back a stop string's length.

    Pieces never hold text that a stop string may still cut (the last ``hold`` characters stay back
    until ``finish``), and a restarted sequence that regrows the same text sends nothing twice.
    """

    def __init__(self, sink: TokenSink, *, hold: int = 0) -> None:
        self._sink = sink
        self._hold = hold
        self._sent = 0

    def grow(self, text: str) -> None:
        """Send what ``text`` adds to what was sent, except its last ``hold`` characters."""
        safe = len(text) - self._hold
        if safe > self._sent:
            self._sink(text[self._sent:safe])
            self._sent = safe

    def finish(self, text: str) -> None:
        """Send the rest of the final text."""
        if len(text) > self._sent:
            self._sink(text[self._sent:])
            self._sent = len(text)
