"""Semantic checks of a parsed program: names, types, step parameters, loops, calls and returns.

Every problem is collected; nothing stops at the first error.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from sfdsl import ast
from sfdsl.check_steps import StepChecks
from sfdsl.constant_checks import range_problems
from sfdsl.declarations import BACKENDS, ROLES, SPLICE_ROLE
from sfdsl.diagnostics import Diagnostic, Span, with_suggestion
from sfdsl.program import ParsedProgram
from sfdsl.scope import Loop, Scope, Symbol
from sfdsl.step_kind import SAMPLING
from sfdsl.templates import TemplateError, variables
from sfdsl.types import ANY, FLOAT, PARAM_TYPES, ExprTyper, Type, assignable, join, parse_type


def check_program(program: ParsedProgram) -> list[Diagnostic]:
    """Check every recipe of every module; return errors and warnings."""
    diagnostics: list[Diagnostic] = []
    calls = nx.DiGraph()
    for file, module in program.modules.items():
        seen: dict[str, ast.RecipeDecl] = {}
        for recipe in module.recipes:
            if recipe.name in seen:
                diagnostics.append(_d("SF208", f"recipe '{recipe.name}' is defined twice", recipe.span,
                                      f"first defined at line {seen[recipe.name].span.line}"))
            seen[recipe.name] = recipe
            checker = RecipeChecker(program, file, recipe, calls)
            checker.run()
            diagnostics += checker.diagnostics
    for found in nx.simple_cycles(calls):
        spans = [calls.edges[a, found[(i + 1) % len(found)]]["span"] for i, a in enumerate(found)]
        start = min(range(len(found)), key=lambda i: (spans[i].file, spans[i].line, spans[i].column))
        cycle = found[start:] + found[:start]
        first, second = cycle[0], cycle[1 % len(cycle)]
        span = calls.edges[first, second]["span"]
        path = " → ".join(n.split("::")[1] for n in cycle + [cycle[0]])
        diagnostics.append(_d("SF510", f"recursive recipe call: {path}", span,
                              "recipes may not call themselves, directly or indirectly; use refine or vote for loops"))
    return diagnostics


def _d(code: str, message: str, span: Span, hint: str | None = None, severity: str = "error") -> Diagnostic:
    return Diagnostic(code=code, message=message, span=span, hint=hint, severity=severity)  # type: ignore[arg-type]


class RecipeChecker(StepChecks):
    """Checks one recipe."""

    def __init__(self, program: ParsedProgram, file: str, recipe: ast.RecipeDecl, calls: nx.DiGraph) -> None:
        self.program, self.file, self.recipe, self.calls = program, file, recipe, calls
        self.diagnostics: list[Diagnostic] = []
        self.prompts: dict[str, ast.PromptDecl] = {}
        self.models: dict[str, ast.ModelDecl] = {}
        self.used_prompts: set[str] = set()
        self.used_models: set[str] = set()
        self.loops: list[Loop] = []
        self.returns = 0
        self.symbols: list[tuple[str, Symbol]] = []

    # ------------------------------------------------------------ plumbing

    def error(self, code: str, message: str, node: Any, hint: str | None = None) -> None:
        span = node if isinstance(node, Span) else node.span
        self.diagnostics.append(_d(code, message, span, hint))

    def warn(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(_d(code, message, span, hint, "warning"))

    def typer(self, scope: Scope) -> ExprTyper:
        def resolve(node: ast.Name) -> Type | None:
            sym = scope.lookup(node.id)
            if sym is None:
                candidates = scope.visible()
                self.error("SF201", with_suggestion(f"undefined name '{node.id}'", node.id, candidates), node)
                return None
            sym.used = True
            return sym.type

        return ExprTyper(resolve, lambda code, msg, node, hint: self.error(code, msg, node, hint))

    def infer(self, expr: Any, scope: Scope) -> Type:
        return self.typer(scope).infer(expr)

    def define(self, scope: Scope, name: str, type_: Type, span: Span, kind: str = "step") -> None:
        existing = scope.lookup(name)
        if existing is not None and existing.kind != "builtin":
            self.error("SF208", f"'{name}' is already defined (line {existing.span.line})", span,
                       "each name is assigned once; pick a new name")
        sym = Symbol(type_, span, kind)
        scope.names[name] = sym
        self.symbols.append((name, sym))

    # ------------------------------------------------------------ recipe

    def run(self) -> None:
        scope = Scope()
        for param in self.recipe.params:
            declared = PARAM_TYPES.get(str(param.type))
            if declared is None:
                name = str(param.type)
                self.error("SF309", with_suggestion(f"unknown input type '{name}'", name, PARAM_TYPES), param.type)
            type_ = declared or ANY
            if param.default is not None:
                got = self.infer(param.default, Scope())
                if declared is not None and not assignable(got, type_):
                    self.error("SF310", f"default of input '{param.name}' is {got}, not {type_}", param.default)
            self.define(scope, param.name, type_, param.span, "input")
        self.collect_declarations(self.recipe.body)
        for model in self.models.values():
            self.check_model(model)
        for prompt in self.prompts.values():
            self.check_prompt(prompt)
        self.check_block(self.recipe.body, scope)
        if self.returns == 0:
            self.error("SF522", f"recipe '{self.recipe.name}' never returns", self.recipe,
                       "end it with `return <value>` or `return answer: ..., score: ...`")
        for name, sym in self.symbols:
            if sym.kind == "step" and not sym.used and not name.startswith("_"):
                self.warn("SF901", f"step '{name}' is never used", sym.span, "remove it, or prefix its name with _")
        for name, prompt in self.prompts.items():
            if name not in self.used_prompts:
                self.warn("SF902", f"prompt '{name}' is never used", prompt.span)
        for name, model in self.models.items():
            if name not in self.used_models and len(self.models) > 1:
                self.warn("SF903", f"model '{name}' is never used", model.span)

    def collect_declarations(self, block: ast.Block) -> None:
        for stmt in block.stmts:
            tables: dict[str, dict[str, Any]] = {"prompt": self.prompts, "model": self.models}  # type: ignore[dict-item]
            table = tables.get(stmt.stmt)
            if table is not None:
                name = stmt.name  # type: ignore[union-attr]
                if name in table:
                    self.error("SF208", f"{stmt.stmt} '{name}' is defined twice", stmt)
                table[name] = stmt

    def check_model(self, decl: ast.ModelDecl) -> None:
        if decl.backend not in BACKENDS:
            msg = with_suggestion(f"unknown backend '{decl.backend}'", decl.backend, BACKENDS)
            self.error("SF207", msg, decl, "backends: " + ", ".join(BACKENDS))
        for arg in decl.args:
            self.infer(arg.value, Scope())
            if arg.name in SAMPLING:  # a model's sampling defaults are held to the steps' ranges
                for problem in range_problems(arg.name, SAMPLING[arg.name], arg.value, f"model '{decl.name}'"):
                    self.error(*problem)

    def check_prompt(self, decl: ast.PromptDecl) -> None:
        for turn in decl.turns or []:
            if turn.splice is not None and turn.role != SPLICE_ROLE:
                self.error("SF316", f"a chat turn's text must be a string; to splice a conversation write "
                           f"`{SPLICE_ROLE}: NAME`", turn, f"e.g. {SPLICE_ROLE}: history")
            elif turn.splice is None and turn.role == SPLICE_ROLE:
                self.error("SF316", f"`{SPLICE_ROLE}:` splices a conversation value, not text", turn,
                           f"give it a `conversation` input, e.g. {SPLICE_ROLE}: history")
            elif turn.splice is None and turn.role not in ROLES:
                self.error("SF210", with_suggestion(f"unknown chat role '{turn.role}'", turn.role, ROLES), turn)
        for text in self.prompt_texts(decl):
            try:
                variables(text)
            except TemplateError as exc:
                self.error("SF601", f"template error in prompt '{decl.name}': {exc}", decl.body_span)

    # ------------------------------------------------------------ statements

    def check_block(self, block: ast.Block, scope: Scope) -> bool:
        """Check statements in order; return whether the block always exits."""
        exits = False
        for stmt in block.stmts:
            if exits:
                self.warn("SF523", "unreachable statement after return or abstain", stmt.span)
                break
            exits = self.check_stmt(stmt, scope) or exits
        return exits

    def check_stmt(self, stmt: Any, scope: Scope) -> bool:
        kind = stmt.stmt
        if kind in ("model", "prompt"):
            return False
        if kind == "assign":
            type_ = self.check_rhs(stmt.value, scope)
            self.define(scope, stmt.target, type_, stmt.span)
            return False
        if kind == "if":
            return self.check_if(stmt, scope)
        if kind == "return":
            self.check_return(stmt, scope)
            return True
        if kind == "abstain":
            self.returns += 1
            self.check_fields(stmt.fields, scope, abstain=True)
            return True
        return self.check_loop_control(stmt, scope)

    def check_if(self, stmt: ast.If, scope: Scope) -> bool:
        self.infer(stmt.cond, scope)
        then_scope, else_scope = Scope(scope), Scope(scope)
        then_exits = self.check_block(stmt.then, then_scope)
        else_exits = self.check_block(stmt.orelse, else_scope) if stmt.orelse else False
        for name, sym in then_scope.names.items():
            other = else_scope.names.get(name)
            if other is not None:
                other.used = sym.used = True
                scope.names[name] = Symbol(join(sym.type, other.type), sym.span, "step")
                self.symbols.append((name, scope.names[name]))
        return then_exits and else_exits

    def check_return(self, stmt: ast.Return, scope: Scope) -> None:
        self.returns += 1
        if stmt.fields is not None:
            self.check_fields(stmt.fields, scope, abstain=False)
        else:
            self.check_rhs(stmt.value, scope)
            declared = {f.name for f in self.recipe.returns}
            if declared - {"answer", "score"}:
                missing = sorted(declared - {"answer", "score"})
                self.error("SF520", f"return must give the declared output(s) {', '.join(missing)}", stmt,
                           "write `return answer: ..., " + ", ".join(f"{m}: ..." for m in missing) + "`")

    def check_fields(self, fields: list[ast.Field_], scope: Scope, *, abstain: bool) -> None:
        declared = {f.name: f for f in self.recipe.returns}
        given = set()
        for f in fields:
            type_ = self.infer(f.value, scope)
            given.add(f.name)
            if f.name == "reason" and abstain:
                continue
            if declared and f.name not in declared and f.name not in ("answer", "score"):
                msg = f"recipe '{self.recipe.name}' does not declare output '{f.name}'"
                msg = with_suggestion(msg, f.name, declared)
                self.error("SF521", msg, f, "declare it after `->`, e.g. -> (answer, " + f.name + ")")
            elif f.name in declared and declared[f.name].type is not None:
                want = parse_type(str(declared[f.name].type))
                if want is not None and not assignable(type_, want):
                    self.error("SF306", f"output '{f.name}' is declared {want} but given {type_}", f.value)
            if f.name == "score" and not assignable(type_, FLOAT):
                self.error("SF306", f"score must be a number, not {type_}", f.value)
        if abstain and "reason" not in given:
            self.error("SF307", "abstain needs a reason", fields[0] if fields else self.recipe,
                       'write `abstain reason: "..."`')
        if not abstain and "answer" not in given:
            self.error("SF520", "return must give an answer", fields[0], "write `return answer: ...`")
        for name in declared:
            if not abstain and name not in given and name not in ("score",):
                self.error("SF520", f"return does not give declared output '{name}'", fields[0])

    def check_loop_control(self, stmt: Any, scope: Scope) -> bool:
        kind = stmt.stmt
        allowed = {"stop": ("refine",), "next": ("refine",), "score": ("refine", "vote"),
                   "yield": ("map", "vote", "search")}[kind]
        loop = self.loops[-1] if self.loops else None
        if loop is None or loop.kind not in allowed:
            where = " or ".join(f"a {a} body" for a in allowed)
            self.error("SF401", f"'{kind}' is only allowed in {where}", stmt)
        if kind == "stop":
            self.infer(stmt.cond, scope)
        elif kind == "score":
            if not assignable(self.infer(stmt.value, scope), FLOAT):
                self.error("SF306", "score needs a number", stmt.value)
        elif kind == "next":
            type_ = self.check_rhs(stmt.value, scope)
            if loop is not None:
                loop.nexts += 1
                loop.yields.append(type_)
        else:
            type_ = self.check_rhs(stmt.value, scope)
            if loop is not None:
                loop.yields.append(type_)
        return False
