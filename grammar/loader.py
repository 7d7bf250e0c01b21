"""Loads the .sf grammar once into a cached LALR parser."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark

GRAMMAR_FILE = "sf.lark"


def grammar_text() -> str:
    """The grammar source shipped with the package."""
    return resources.files("sfdsl.grammar").joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser, built on first use and reused afterwards."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )


#: Words the grammar reserves; they cannot name steps. Read from the grammar's quoted literals.
KEYWORDS = frozenset(re.findall(r'"([a-z_]+)"', grammar_text()))
