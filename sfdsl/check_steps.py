"""Checks of each step kind: parameters, prompts, models, loop bodies and calls (a mixin of RecipeChecker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfdsl import ast, steps
from sfdsl.constant_checks import constant_problems
from sfdsl.diagnostics import Span, with_suggestion
from sfdsl.program import unknown_recipe_message
from sfdsl.scope import Loop, Scope, Symbol
from sfdsl.templates import TemplateError, variables
from sfdsl.types import ANY, assignable, elem, is_list, list_of

if TYPE_CHECKING:
    import networkx as nx

    from sfdsl.program import Program

EXTRACT_TYPES = {"number": "float", "int": "int", "text": "str", "list": "list[str]", "regex": "str",
                 "choice": "str", "bool": "bool"}
BOUND_PARAMS = {"max", "depth", "beam", "simulations", "max_total", "budget"}
LOOP_BUILTINS = {"refine": {"history": "list[dict]", "round": "int"}, "search": {"state": "str", "depth": "int"}}


class StepChecks:
    """Step checks; RecipeChecker supplies error(), infer(), define(), check_block() and the tables."""

    program: Program
    file: str
    recipe: ast.Recipe
    calls: nx.DiGraph
    prompts: dict[str, ast.PromptDecl]
    models: dict[str, ast.ModelDecl]
    used_prompts: set[str]
    used_models: set[str]
    loops: list[Loop]

    if TYPE_CHECKING:  # provided by RecipeChecker

        def error(self, code: str, message: str, node: Any, hint: str | None = None) -> None: ...

        def infer(self, expr: Any, scope: Scope) -> str: ...

        def define(self, scope: Scope, name: str, type_: str, span: Span, kind: str = "step") -> None: ...

        def check_block(self, block: ast.Block, scope: Scope) -> bool: ...

    @staticmethod
    def prompt_texts(decl: ast.PromptDecl) -> list[str]:
        return [decl.text] if decl.text is not None else [t.text for t in decl.turns or []]

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
                got = want
            if not assignable(got, want):
                self.error("SF306", f"parameter '{arg.name}' of {where} expects {want}, got {got}", arg.value)
                continue
            for problem in constant_problems(arg.name, want, arg.value, where):
                self.error(*problem)
            if spec[arg.name].one_of and isinstance(arg.value, ast.Const):
                allowed = spec[arg.name].one_of
                if arg.value.value not in allowed:
                    msg = with_suggestion(f"'{arg.value.value}' is not a value of '{arg.name}' for {where}",
                                          str(arg.value.value), allowed)
                    self.error("SF308", msg, arg.value, "values: " + ", ".join(repr(v) for v in allowed))
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
