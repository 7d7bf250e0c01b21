"""A Pygments lexer for .sf recipes, registered as ``sf`` through the ``pygments.lexers`` entry point.

Sphinx, MkDocs and ``pygmentize -l sf recipe.sf`` find it once sfdsl is
installed. Template tags inside strings (``{{ x }}``, ``{% for %}``) are
highlighted as interpolation, regex literals (``/answer is (\\d+)/i``) as regexes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from sfdsl.expressions import BUILTINS

CONSTANTS = ("true", "false", "none")
WORD_OPERATORS = ("and", "or", "not", "in", "matches")


def grammar_keywords() -> tuple[str, ...]:
    """Every word the grammar spells out (``recipe``, ``generate``, ``when``...), read from its terminals."""
    from lark.lexer import PatternStr

    from sfdsl.grammar.loader import parser

    words_ = {t.pattern.value for t in parser().terminals if isinstance(t.pattern, PatternStr)}
    return tuple(sorted(w for w in words_ if w.isidentifier() and w not in CONSTANTS + WORD_OPERATORS))


KEYWORDS = grammar_keywords()
TYPES = ("str", "int", "float", "bool", "list", "any", "dict")
NAME = r"[A-Za-z_][A-Za-z0-9_]*"



class SfLexer(RegexLexer):
    """Lexer for sfdsl .sf recipe files."""

    name = "sfdsl"
    aliases: ClassVar[list[str]] = ["sf", "sfdsl"]
    filenames: ClassVar[list[str]] = ["*.sf"]
    mimetypes: ClassVar[list[str]] = ["text/x-sfdsl"]
    url = "https://github.com/sfdsl/sfdsl"

    tokens: ClassVar[dict[str, list[Any]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"""', String.Double, "triple"),
            (r'"', String.Double, "double"),
            (r"/(?![/*\s])(?:[^/\\\n]|\\.)+/[ims]*", String.Regex),
            (r"(recipe)(\s+)(" + NAME + ")", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(model|prompt)(\s+)(" + NAME + ")", bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (r"(import)\b", Keyword.Namespace),
            (r"(call)(\s+)(" + NAME + r"(?:\." + NAME + ")*)", bygroups(Keyword, Whitespace, Name.Function)),
            (r"(system|user|assistant)(\s*)(:)", bygroups(Name.Tag, Whitespace, Punctuation)),
            (r"(" + NAME + r")(\s*)(:)", bygroups(Name.Attribute, Whitespace, Punctuation)),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(TYPES, suffix=r"\b(?!\s*\()"), Keyword.Type),
            (words(tuple(sorted(BUILTINS)), suffix=r"(?=\s*\()"), Name.Builtin),
            (NAME, Name),
            (r"\d+(\.\d+)?([eE][+-]?\d+)?", Number),
            (r"->|==|!=|<=|>=|[<>=+\-*/%]", Operator),
            (r"[(){}\[\],.:]", Punctuation),
        ],
        "template": [
            (r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", String.Interpol),
            (r"\\.", String.Escape),
        ],
        "triple": [
            include("template"),
            (r'"""', String.Double, "#pop"),
            (r'[^"\\{]+|"|\{', String.Double),
        ],
        "double": [
            include("template"),
            (r'"', String.Double, "#pop"),
            (r'[^"\\{\n]+|\{', String.Double),
        ],
    }
