"""Hover text: a step kind's parameter table, a parameter's row, a name's type, a recipe's signature and bound."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfdsl import ast
from sfdsl.diagnostics import Span
from sfdsl.lsp.analysis import Analysis
from sfdsl.lsp.lexicon import STEP_WORDS, Lexicon, Role
from sfdsl.program import ImportRoots
from sfdsl.registry import KINDS
from sfdsl.step_kind import ParamSpec, Spec
from sfdsl.types import Type


@dataclass(frozen=True)
class HoverText:
    """Markdown for the token spanning ``start``–``end`` (offsets)."""

    markdown: str
    start: int
    end: int


def hover(analysis: Analysis, lex: Lexicon, offset: int, import_path: list[str] | None = None) -> HoverText | None:
    """What to show for the token at ``offset``, or None."""
    literal = lex.comment_or_string_at(offset)
    if literal is not None:
        return _import_hover(analysis, lex, literal, import_path or [])
    index = lex.index_at(offset)
    if index is None or lex.tokens[index].kind != "name":
        return None
    tok = lex.tokens[index]
    role = lex.role(index)
    text = HOVERS.get(role.role, _nothing)(analysis, lex, index, role)
    return HoverText(text, tok.start, tok.end) if text else None


# ---------------------------------------------------------------- tables


def spec_row(name: str, p: ParamSpec) -> str:
    """One parameter as a table row: name, type, default, meaning."""
    return f"| `{name}` | `{p.type}` | {default_text(p)} | {p.doc} |"


def default_text(p: ParamSpec) -> str:
    if p.required:
        return "required"
    if p.default is None:
        return "—"
    value = list(p.default) if isinstance(p.default, tuple) else p.default
    return f"`{json.dumps(value)}`" if not isinstance(value, bool) else f"`{str(value).lower()}`"


def spec_table(spec: Spec) -> str:
    if not spec:
        return "No parameters."
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(rows + [spec_row(name, p) for name, p in spec.items()])


def kind_markdown(kind_name: str, mode: str | None = None) -> str:
    """A step kind's doc line and syntax, then the parameter table of ``mode`` (every mode when None)."""
    kind = KINDS[kind_name]
    parts = [f"**{kind.name}**: {kind.doc}", f"```sf\n{kind.syntax}\n```"]
    modes = dict(kind.modes or {})
    for name, spec in modes.items():
        if mode is not None and name != mode:
            continue
        title = f"`{kind.mode_field}` **{name}**\n\n" if name else ""
        parts.append(title + spec_table(spec))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- by role


def _nothing(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    return ""


def _step(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    words = [t.text for t in lex.tokens[index:index + 4]]
    kinds = STEP_WORDS.get(role.name, [])
    chosen = [k for k in kinds if k != "vote_times" or "times" in words] or kinds
    return "\n\n---\n\n".join(kind_markdown(k) for k in chosen[:1])


def _mode(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    found = lex.step_of(index, inclusive=True)
    if found is None:
        return ""
    kind, mode = found
    return kind_markdown(kind, mode) if mode == role.name else ""


def _arg(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    spec = arg_spec(analysis, lex, index)
    if spec is None or role.name not in spec:
        return ""
    p = spec[role.name]
    return f"**{role.name}**: `{p.type}`, default {default_text(p)}\n\n{p.doc}"


def arg_spec(analysis: Analysis, lex: Lexicon, index: int) -> Spec | None:
    """The parameters allowed inside the `( … )` that holds token ``index``."""
    bracket = lex.open_bracket(index - 1) if index > 0 else None
    if bracket is None or lex.tokens[bracket].text != "(":
        return None
    callee = _callee(analysis, lex, bracket)
    if callee is not None:
        return callee
    found = lex.step_of(bracket)
    if found is None:
        return None
    kind = KINDS[found[0]]
    return (kind.modes or {}).get(found[1])


def _callee(analysis: Analysis, lex: Lexicon, bracket: int) -> Spec | None:
    """For `call r(`: the called recipe's inputs as a spec."""
    names = [t.text for t in lex.tokens[max(0, bracket - 4):bracket]]
    if "call" not in names or analysis.program is None:
        return None
    target = [t for t in names[names.index("call") + 1:] if t != "."]
    resolved = analysis.program.resolve_call(analysis.file, target)
    if resolved is None:
        return None
    file, recipe = resolved
    source = analysis.program.sources.get(file, "")
    from sfdsl.types import PARAM_TYPES, STR

    return {p.name: ParamSpec(PARAM_TYPES.get(str(p.type), STR), "recipe input",
                              default=source_of(source, p.default.span) if p.default else None,
                              required=p.default is None) for p in recipe.params}


def _name(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    facts = analysis.facts.get(role.recipe or "")
    sym = facts.symbol(role.name) if facts else None
    if sym is None:
        return ""
    return f"```sf\n{role.name}: {sym.type}\n```\n\n{sym.kind} {_fields(sym.type)}".rstrip()


def _field(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    base = chain_type(analysis, role.recipe, role.base)
    type_ = base.field(role.name) if base is not None else None
    if type_ is None:
        return ""
    return f"```sf\n{'.'.join(role.base)}.{role.name}: {type_}\n```\n\nfield of `{base}`"


def chain_type(analysis: Analysis, recipe: str | None, names: tuple[str, ...]) -> Type | None:
    """The type of ``a.b.c`` in ``recipe``, following record fields."""
    facts = analysis.facts.get(recipe or "")
    if facts is None or not names:
        return None
    sym = facts.symbol(names[0])
    type_ = sym.type if sym is not None else None
    for name in names[1:]:
        if type_ is None:
            return None
        type_ = type_.item.field(name) if type_.item is not None else type_.field(name)
    return type_


def _fields(type_: Type) -> str:
    record = type_.item if type_.item is not None else type_
    if not record.fields:
        return ""
    return "· fields: " + ", ".join(f"`{n}: {t}`" for n, t in record.fields)


def _prompt(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    facts = analysis.facts.get(role.recipe or "")
    decl = facts.prompts.get(role.name) if facts else None
    if decl is None:
        return ""
    turns = "\n".join(f"{t.role}: {t.text}" for t in decl.turns or [])
    body = decl.text if decl.text is not None else turns
    lines = body.splitlines()
    shown = "\n".join(lines[:12]) + ("\n…" if len(lines) > 12 else "")
    return f"**prompt {role.name}**\n\n```\n{shown}\n```"


def _model(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    facts = analysis.facts.get(role.recipe or "")
    decl = facts.models.get(role.name) if facts else None
    if decl is None:
        return ""
    args = ", ".join(a.name for a in decl.args)
    return f"```sf\nmodel {decl.name} = {decl.backend}" + (f" ({args})" if args else "") + "\n```"


def _recipe(analysis: Analysis, lex: Lexicon, index: int, role: Role) -> str:
    if analysis.program is not None and role.role == "recipe":
        resolved = analysis.program.resolve_call(analysis.file, role.name.split("."))
        if resolved is None:
            return ""
        file, recipe = resolved
        source = analysis.program.sources.get(file, "")
    else:
        found = analysis.recipe(role.name)
        if found is None:
            return ""
        file, recipe, source = analysis.file, found, analysis.text
    parts = [f"```sf\n{signature(recipe, source)}\n```"]
    bound = analysis.bounds.get(recipe.name) if file == analysis.file else None
    if bound is not None:
        parts.append(f"cost bound: {bound}")
    if file != analysis.file:
        parts.append(f"from `{file}`")
    if recipe.doc:
        parts.append(recipe.doc.split("\n\n")[0])
    return "\n\n".join(parts)


def signature(recipe: ast.RecipeDecl, source: str) -> str:
    """``recipe name(input: type = default, ...) -> (outputs)`` with defaults as written."""
    params = ", ".join(f"{p.name}: {p.type}" + (f" = {source_of(source, p.default.span)}" if p.default else "")
                       for p in recipe.params)
    outs = ", ".join(f"{o.name}: {o.type}" if o.type else o.name for o in recipe.returns)
    return f"recipe {recipe.name}({params})" + (f" -> ({outs})" if outs else "")


def source_of(source: str, span: Span) -> str:
    """The source text a span covers."""
    lines = source.splitlines(keepends=True)
    start = sum(len(line) for line in lines[:span.line - 1]) + span.column - 1
    end = sum(len(line) for line in lines[:span.end_line - 1]) + span.end_column - 1
    return source[start:end]


def _import_hover(analysis: Analysis, lex: Lexicon, literal: Any, import_path: list[str]) -> HoverText | None:
    index = next((i for i, t in enumerate(lex.tokens) if t.start == literal.start), None)
    if index is None or index == 0 or lex.tokens[index - 1].text != "import":
        return None
    target = resolve_import(analysis.file, literal.text.strip('"'), import_path)
    shown = f"`{target}`" if target else "not found inside the allowed directories"
    return HoverText(f"import resolves to {shown}", literal.start, literal.end)


def resolve_import(file: str, path: str, import_path: list[str]) -> Path | None:
    """Where ``import "path"`` in ``file`` points, with the compiler's confinement; None when refused."""
    base = Path(file).parent if not file.startswith("<") else Path.cwd()
    roots = ImportRoots.for_main(base, import_path)
    for candidate in roots.candidates(base, path):
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if roots.allows(real) and real.is_file():
            return real
    return None


HOVERS: dict[str, Callable[[Analysis, Lexicon, int, Role], str]] = {
    "step": _step, "mode": _mode, "arg": _arg, "name": _name, "decl_name": _name, "field": _field,
    "prompt": _prompt, "decl_prompt": _prompt, "model": _model, "decl_model": _model, "recipe": _recipe,
    "decl_recipe": _recipe,
}
