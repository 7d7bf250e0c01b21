"""Completion: step kinds and modes, step parameters, names and record fields, prompts, models, recipes,
and template variables inside ``{{ … }}``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sfdsl.expressions import BUILTINS
from sfdsl.grammar.loader import KEYWORDS
from sfdsl.lsp.analysis import Analysis
from sfdsl.lsp.hover import arg_spec, chain_type, default_text
from sfdsl.lsp.lexicon import STEP_WORDS, Lexicon, Tok
from sfdsl.registry import KINDS

#: What follows a word: the step kind whose modes complete there.
MODE_AFTER = {"evaluate": "evaluate", "extract": "extract", "search": "search"}


@dataclass(frozen=True)
class Item:
    """One completion: label, kind (keyword, function, variable, field, property, module, value), detail, doc."""

    label: str
    kind: str
    detail: str = ""
    doc: str = ""
    insert: str | None = None


def complete(analysis: Analysis, lex: Lexicon, offset: int) -> list[Item]:
    """The completions at ``offset``."""
    literal = lex.comment_or_string_at(offset)
    if literal is not None:
        return _template_variables(analysis, lex, literal, offset) if literal.kind == "string" else []
    at = lex.before(offset)
    if at >= 0 and lex.tokens[at].kind == "name" and lex.tokens[at].end == offset:
        at -= 1  # the word being typed: complete from the token before it
    ctx = lex.tokens[at] if at >= 0 else None
    recipe = lex.recipe_at(offset)
    if ctx is None:
        return _words(["recipe", "import"], "keyword")
    text = ctx.text
    previous = lex.tokens[at - 1].text if at > 0 else ""
    if text == ".":
        return _fields(analysis, lex, at, recipe)
    if text in ("generate", "deepen") or (previous == "evaluate" and ctx.kind == "name"):
        return _declared(lex, recipe, "decl_prompt", "prompt")
    if text in MODE_AFTER:
        return _modes(MODE_AFTER[text])
    if text == "by":
        found = lex.step_of(at, inclusive=True)
        return _modes(found[0]) if found else []
    if text == "using":
        return _declared(lex, recipe, "decl_model", "model")
    if text == "call":
        return _recipes(analysis, lex)
    if text in ("(", ","):
        spec = arg_spec(analysis, lex, at + 1)
        if spec is not None:
            return [Item(name, "property", f"{p.type} = {default_text(p).strip('`')}", p.doc, f"{name}: ")
                    for name, p in spec.items()]
    steps = [Item(word, "keyword", KINDS[kinds[0]].syntax, KINDS[kinds[0]].doc) for word, kinds in STEP_WORDS.items()]
    names = _names(analysis, recipe, lex, offset)
    if text == "=":
        return steps + names + _builtins()
    return names + _builtins() + steps + _words(sorted(KEYWORDS - set(STEP_WORDS)), "keyword")


def _words(words: Iterable[str], kind: str) -> list[Item]:
    return [Item(w, kind) for w in words]


def _modes(kind_name: str) -> list[Item]:
    kind = KINDS[kind_name]
    return [Item(mode, "value", f"{kind.name} {kind.mode_field}", ", ".join(spec) or "no parameters")
            for mode, spec in (kind.modes or {}).items() if mode]


def _builtins() -> list[Item]:
    return [Item(name, "function", f"{name}(…) -> {info[3]}") for name, info in sorted(BUILTINS.items())]


def _names(analysis: Analysis, recipe: str | None, lex: Lexicon, offset: int) -> list[Item]:
    facts = analysis.facts.get(recipe or "")
    line = lex.position(offset)[0] + 1
    seen: dict[str, Item] = {}
    if facts is not None:
        for name, sym in facts.symbols:
            if sym.kind == "input" or sym.span.line <= line:
                seen.setdefault(name, Item(name, "variable", str(sym.type), sym.kind))
    for index, role in lex.names():
        if role.recipe == recipe and role.role == "decl_name" and lex.tokens[index].start < offset:
            seen.setdefault(role.name, Item(role.name, "variable"))
    return list(seen.values())


def _fields(analysis: Analysis, lex: Lexicon, dot: int, recipe: str | None) -> list[Item]:
    type_ = chain_type(analysis, recipe, lex.chain(dot))
    if type_ is None:
        return []
    record = type_.item if type_.item is not None else type_
    return [Item(name, "field", str(t), f"field of {record}") for name, t in record.fields]


def _declared(lex: Lexicon, recipe: str | None, role: str, what: str) -> list[Item]:
    names = {r.name for _, r in lex.names() if r.role == role and r.recipe == recipe}
    return [Item(name, "value", what) for name in sorted(names)]


def _recipes(analysis: Analysis, lex: Lexicon) -> list[Item]:
    if analysis.program is not None:
        names = analysis.program.callable_names(analysis.file)
    else:
        names = [name for name, *_ in lex.recipes]
    return [Item(name, "function", "recipe") for name in names]


def _template_variables(analysis: Analysis, lex: Lexicon, literal: Tok, offset: int) -> list[Item]:
    inside = lex.text[literal.start:offset]
    opened = max(inside.rfind("{{"), inside.rfind("{%"))
    if opened < 0 or max(inside.rfind("}}"), inside.rfind("%}")) > opened:
        return []
    recipe = lex.recipe_at(offset)
    items = {item.label: item for item in _names(analysis, recipe, lex, len(lex.text))}
    for kind in KINDS.values():
        for name in kind.supplies:
            items.setdefault(name, Item(name, "variable", f"given by {kind.name}"))
    return list(items.values())
