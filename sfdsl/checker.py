"""Semantic checks of a parsed program: names, types, step parameters, loops, calls and returns.

Every problem is collected; nothing stops at the first error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from sfdsl import ast, steps
from sfdsl.diagnostics import Diagnostic, Span, with_suggestion
from sfdsl.program import Program, unknown_recipe_message
from sfdsl.templates import TemplateError, variables
from sfdsl.types import ANY, PARAM_TYPES, ExprTyper, assignable, elem, is_list, join, list_of

EXTRACT_TYPES = {"number": "float", "int": "int", "text": "str", "list": "list[str]", "regex": "str",
                 "choice": "str", "bool": "bool"}
BOUND_PARAMS = {"max", "depth", "beam", "simulations", "max_total", "budget"}
LOOP_BUILTINS = {"refine": {"history": "list[dict]", "round": "int"}, "search": {"state": "str", "depth": "int"}}


@dataclass
class Symbol:
    type: str
    span: Span
    kind: str
    used: bool = False


@dataclass
class Scope:
    parent: Scope | None = None
    names: dict[str, Symbol] = field(default_factory=dict)

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> list[str]:
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            names += list(scope.names)
            scope = scope.parent
        return names


@dataclass
class Loop:
    kind: str  # refine | map | vote | search
    yields: list[str] = field(default_factory=list)
    nexts: int = 0


def check_program(program: Program) -> list[Diagnostic]:
    """Check every recipe of every module; return errors and warnings."""
    diagnostics: list[Diagnostic] = []
    calls = nx.DiGraph()
    for file, module in program.modules.items():
        seen: dict[str, ast.Recipe] = {}
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


class RecipeChecker:
    """Checks one recipe."""

    def __init__(self, program: Program, file: str, recipe: ast.Recipe, calls: nx.DiGraph) -> None:
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
        def resolve(node: ast.Name) -> str | None:
            sym = scope.lookup(node.id)
            if sym is None:
                candidates = scope.visible()
                self.error("SF201", with_suggestion(f"undefined name '{node.id}'", node.id, candidates), node)
                return None
            sym.used = True
            return sym.type

        return ExprTyper(resolve, lambda code, msg, node, hint: self.error(code, msg, node, hint))

    def infer(self, expr: Any, scope: Scope) -> str:
        return self.typer(scope).infer(expr)

    def define(self, scope: Scope, name: str, type_: str, span: Span, kind: str = "step") -> None:
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
            type_ = str(param.type)
            if type_ not in PARAM_TYPES:
                self.error("SF309", with_suggestion(f"unknown input type '{type_}'", type_, PARAM_TYPES), param.type)
            if param.default is not None:
                got = self.infer(param.default, Scope())
                if not assignable(got, type_):
                    self.error("SF310", f"default of input '{param.name}' is {got}, not {type_}", param.default)
            self.define(scope, param.name, type_, param.span, "input")
        self.collect_declarations(self.recipe.body)
        for decl in self.models.values():
            self.check_model(decl)
        for decl in self.prompts.values():
            self.check_prompt(decl)
        self.check_block(self.recipe.body, scope)
        if self.returns == 0:
            self.error("SF522", f"recipe '{self.recipe.name}' never returns", self.recipe,
                       "end it with `return <value>` or `return answer: ..., score: ...`")
        for name, sym in self.symbols:
            if sym.kind == "step" and not sym.used and not name.startswith("_"):
                self.warn("SF901", f"step '{name}' is never used", sym.span, "remove it, or prefix its name with _")
        for name, decl in self.prompts.items():
            if name not in self.used_prompts:
                self.warn("SF902", f"prompt '{name}' is never used", decl.span)
        for name, decl in self.models.items():
            if name not in self.used_models and len(self.models) > 1:
                self.warn("SF903", f"model '{name}' is never used", decl.span)

    def collect_declarations(self, block: ast.Block) -> None:
        for stmt in block.stmts:
            table: dict[str, Any] | None = {"prompt": self.prompts, "model": self.models}.get(stmt.stmt)
            if table is not None:
                name = stmt.name  # type: ignore[union-attr]
                if name in table:
                    self.error("SF208", f"{stmt.stmt} '{name}' is defined twice", stmt)
                table[name] = stmt

    def check_model(self, decl: ast.ModelDecl) -> None:
        if decl.backend not in steps.MODEL_BACKENDS:
            msg = with_suggestion(f"unknown backend '{decl.backend}'", decl.backend, steps.MODEL_BACKENDS)
            self.error("SF207", msg, decl, "backends: " + ", ".join(steps.MODEL_BACKENDS))
        for arg in decl.args:
            self.infer(arg.value, Scope())

    def check_prompt(self, decl: ast.PromptDecl) -> None:
        for turn in decl.turns or []:
            if turn.role not in steps.ROLES:
                self.error("SF210", with_suggestion(f"unknown chat role '{turn.role}'", turn.role, steps.ROLES), turn)
        for text in self.prompt_texts(decl):
            try:
                variables(text)
            except TemplateError as exc:
                self.error("SF601", f"template error in prompt '{decl.name}': {exc}", decl.body_span)

    @staticmethod
    def prompt_texts(decl: ast.PromptDecl) -> list[str]:
        return [decl.text] if decl.text is not None else [t.text for t in decl.turns or []]

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
                want = str(declared[f.name].type)
                if not assignable(type_, want):
                    self.error("SF306", f"output '{f.name}' is declared {want} but given {type_}", f.value)
            if f.name == "score" and not assignable(type_, "float"):
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
            if not assignable(self.infer(stmt.value, scope), "float"):
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

    # ------------------------------------------------------------ steps

    def check_rhs(self, node: Any, scope: Scope) -> str:
        if not ast.is_step(node):
            return self.infer(node, scope)
        return str(getattr(self, f"step_{node.kind}")(node, scope))

    def check_args(self, args: list[ast.Arg], spec: dict[str, steps.ParamSpec], where: str, node: Any,
                   scope: Scope) -> dict[str, ast.Arg]:
        seen: dict[str, ast.Arg] = {}
        for arg in args:
            if arg.name in seen:
                self.error("SF311", f"parameter '{arg.name}' given twice", arg)
            seen[arg.name] = arg
            if arg.name not in spec:
                msg = with_suggestion(f"unknown parameter '{arg.name}' for {where}", arg.name, spec)
                self.error("SF305", msg, arg, "parameters: " + ", ".join(spec))
                self.infer(arg.value, scope)
                continue
            want = spec[arg.name].type
            if want == "prompt":
                if not isinstance(arg.value, ast.Name) or arg.value.id not in self.prompts:
                    self.error("SF204", f"parameter '{arg.name}' of {where} must name a prompt", arg.value)
                else:
                    self.used_prompts.add(arg.value.id)
                continue
            got = self.infer(arg.value, scope)
            if want == "regex" and got == "str":
                continue
            if not assignable(got, want):
                self.error("SF306", f"parameter '{arg.name}' of {where} expects {want}, got {got}", arg.value)
        for name, p in spec.items():
            if p.required and name not in seen:
                if name in BOUND_PARAMS:
                    self.error("SF410", f"unbounded loop: {where} needs `{name}:` ({p.doc})", node,
                               f"every loop needs a static bound, e.g. ({name}: 4)")
                else:
                    self.error("SF307", f"{where} needs parameter `{name}:` ({p.doc})", node)
        return seen

    def use_prompt(self, name: str, node: Any, scope: Scope, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        decl = self.prompts.get(name)
        if decl is None:
            self.error("SF204", with_suggestion(f"unknown prompt '{name}'", name, self.prompts), node,
                       f"declare it: prompt {name} = \"...\"")
            return
        self.used_prompts.add(name)
        for text in self.prompt_texts(decl):
            try:
                names = variables(text)
            except TemplateError:
                continue
            for var in sorted(names - extra):
                sym = scope.lookup(var)
                if sym is None:
                    msg = with_suggestion(f"template variable '{var}' of prompt '{name}' is not defined", var,
                                          scope.visible())
                    self.error("SF205", msg, decl.body_span, f"it is used by the step at line {node.span.line}")
                else:
                    sym.used = True

    def use_model(self, name: str | None, node: Any) -> None:
        if name is None:
            return
        if name not in self.models:
            self.error("SF206", with_suggestion(f"unknown model '{name}'", name, self.models), node,
                       f"declare it: model {name} = llama(model: \"default\")")
        self.used_models.add(name)

    def step_generate(self, node: ast.Generate, scope: Scope) -> str:
        self.use_prompt(node.prompt, node, scope)
        self.use_model(node.using, node)
        args = self.check_args(node.args, steps.GENERATE, "generate", node, scope)
        return list_of("text") if "n" in args else "text"

    def step_deepen(self, node: ast.Deepen, scope: Scope) -> str:
        self.use_prompt(node.prompt, node, scope)
        self.use_model(node.using, node)
        args = self.check_args(node.args, steps.DEEPEN, "deepen", node, scope)
        return list_of("text") if "n" in args else "text"

    def step_extract(self, node: ast.Extract, scope: Scope) -> str:
        if node.mode not in steps.EXTRACT_MODES:
            msg = with_suggestion(f"unknown extract mode '{node.mode}'", node.mode, steps.EXTRACT_MODES)
            self.error("SF211", msg, node, "modes: " + ", ".join(steps.EXTRACT_MODES))
        if node.choices is not None:
            self.infer(node.choices, scope)
        source = self.infer(node.source, scope)
        base = elem(source) if is_list(source) else source
        if base not in ("text", "str", ANY, "vote", "refined", "result", "search"):
            self.error("SF306", f"extract reads text, but its source is {source}", node.source)
        self.check_args(node.args, steps.EXTRACT, "extract", node, scope)
        result = EXTRACT_TYPES.get(node.mode, ANY)
        return list_of(result) if is_list(source) else result

    def step_evaluate(self, node: ast.Evaluate, scope: Scope) -> str:
        spec = steps.EVALUATE_MODES.get(node.mode)
        if spec is None:
            msg = with_suggestion(f"unknown evaluate mode '{node.mode}'", node.mode, steps.EVALUATE_MODES)
            self.error("SF212", msg, node, "modes: " + ", ".join(steps.EVALUATE_MODES))
        self.use_prompt(node.prompt, node, scope)
        self.use_model(node.using, node)
        if spec is None:
            for arg in node.args:
                self.infer(arg.value, scope)
            return "score"
        args = self.check_args(node.args, spec, f"evaluate {node.mode}", node, scope)
        if node.mode == "likelihood" and "of" in args and is_list(self.infer(args["of"].value, scope)):
            return list_of("score")
        return "score"

    def step_vote(self, node: ast.Vote, scope: Scope) -> str:
        source = self.infer(node.source, scope)
        if not is_list(source) and source != ANY:
            self.error("SF306", f"vote needs a list of answers, but got {source}", node.source,
                       "vote over `generate ... (n: N)` samples, or use `vote N times by ... { ... }`")
        self.vote_mode(node, scope, "vote")
        return "vote"

    def vote_mode(self, node: Any, scope: Scope, where: str) -> None:
        spec = steps.VOTE_MODES.get(node.mode)
        if spec is None:
            msg = with_suggestion(f"unknown vote mode '{node.mode}'", node.mode, steps.VOTE_MODES)
            self.error("SF213", msg, node, "modes: " + ", ".join(steps.VOTE_MODES))
            return
        args = self.check_args(node.args, spec, f"{where} by {node.mode}", node, scope)
        if "prompt" in args and isinstance(args["prompt"].value, ast.Name):
            self.use_prompt(args["prompt"].value.id, node, scope, extra={"responses"})
        if node.mode == "weighted" and where == "vote" and "weights" not in args:
            self.error("SF307", "vote by weighted needs `weights:`", node)
        self.use_model(node.using, node)

    def step_vote_times(self, node: ast.VoteTimes, scope: Scope) -> str:
        if not assignable(self.infer(node.count, scope), "int"):
            self.error("SF306", "the number of votes must be an int", node.count)
        self.vote_mode(node, scope, "vote times")
        self.loop_body("vote", node.body, Scope(scope), node, needs="yield")
        return "vote"

    def step_refine(self, node: ast.Refine, scope: Scope) -> str:
        initial = self.infer(node.initial, scope)
        self.check_args(node.args, steps.REFINE, "refine", node, scope)
        body_scope = Scope(scope)
        self.define(body_scope, node.var, initial, node.span, "loop")
        for name, type_ in LOOP_BUILTINS["refine"].items():
            body_scope.names[name] = Symbol(type_, node.span, "builtin")
        loop = self.loop_body("refine", node.body, body_scope, node, needs="next")
        if loop.nexts > 1:
            self.error("SF402", "a refine body has exactly one `next`", node)
        return "refined"

    def step_map(self, node: ast.MapStep, scope: Scope) -> str:
        source = self.infer(node.source, scope)
        if not is_list(source) and source != ANY:
            self.error("SF306", f"map needs a list, but got {source}", node.source)
        self.check_args(node.args, steps.MAP, "map", node, scope)
        body_scope = Scope(scope)
        self.define(body_scope, node.var, elem(source), node.span, "loop")
        loop = self.loop_body("map", node.body, body_scope, node, needs="yield")
        return list_of(loop.yields[0] if loop.yields else ANY)

    def step_call(self, node: ast.CallRecipe, scope: Scope) -> str:
        found = self.program.resolve_call(self.file, node.target)
        if found is None:
            self.error("SF502", unknown_recipe_message(self.program, self.file, node.target), node)
            for arg in node.args:
                self.infer(arg.value, scope)
            return "result"
        file, callee = found
        self.calls.add_edge(f"{self.file}::{self.recipe.name}", f"{file}::{callee.name}", span=node.span)
        params = {p.name: p for p in callee.params}
        given = set()
        for arg in node.args:
            got = self.infer(arg.value, scope)
            given.add(arg.name)
            if arg.name not in params:
                msg = with_suggestion(f"recipe '{callee.name}' has no input '{arg.name}'", arg.name, params)
                self.error("SF503", msg, arg)
            elif not assignable(got, str(params[arg.name].type)):
                self.error("SF504", f"input '{arg.name}' of '{callee.name}' is {params[arg.name].type}, got {got}", arg)
        for name, p in params.items():
            if p.default is None and name not in given:
                self.error("SF505", f"call of '{callee.name}' is missing input '{name}'", node)
        return "result"

    def step_search(self, node: ast.Search, scope: Scope) -> str:
        spec = steps.SEARCH_STRATEGIES.get(node.strategy)
        if spec is None:
            msg = with_suggestion(f"unknown search strategy '{node.strategy}'", node.strategy, steps.SEARCH_STRATEGIES)
            self.error("SF214", msg, node, "strategies: " + ", ".join(steps.SEARCH_STRATEGIES))
        self.infer(node.root, scope)
        if spec is not None:
            self.check_args(node.args, spec, f"search {node.strategy}", node, scope)
        names = [p.name for p in node.parts]
        for part in node.parts:
            if part.name not in steps.SEARCH_PARTS:
                msg = with_suggestion(f"unknown search part '{part.name}'", part.name, steps.SEARCH_PARTS)
                self.error("SF405", msg,
                           part)
                continue
            body_scope = Scope(scope)
            for name, type_ in LOOP_BUILTINS["search"].items():
                body_scope.names[name] = Symbol(type_, part.span, "builtin")
            loop = self.loop_body("search", part.body, body_scope, part, needs="yield")
            if part.name == "expand" and loop.yields and not is_list(loop.yields[0]) and loop.yields[0] != ANY:
                self.error("SF306", "expand must yield a list of next steps, e.g. generate ... (n: 3)", part)
        for required in steps.SEARCH_PARTS:
            if required not in names:
                self.error("SF404", f"search needs an `{required} {{ ... }}` part", node)
        return "search"

    def loop_body(self, kind: str, body: ast.Block, scope: Scope, node: Any, *, needs: str) -> Loop:
        loop = Loop(kind)
        self.loops.append(loop)
        self.check_block(body, scope)
        self.loops.pop()
        if not loop.yields:
            self.error("SF403", f"this {kind} body needs a `{needs}` statement", node)
        return loop
