"""What step kinds' checks use: parameters against their spec, modes, prompts, models and loop bodies.

A mixin of RecipeChecker; each kind's own checks live in its module of sfdsl/steps/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfdsl import ast
from sfdsl.constant_checks import constant_problems, range_problems
from sfdsl.declarations import SPLICE_ROLE
from sfdsl.diagnostics import Span, with_suggestion
from sfdsl.registry import kind_of
from sfdsl.scope import Loop, Scope
from sfdsl.step_kind import Spec, StepKind
from sfdsl.templates import TemplateError, variables
from sfdsl.templates.types import field_reads, root_name
from sfdsl.types import CONVERSATION, PROMPT, REGEX, STR, TEXT, Type, assignable, list_of

if TYPE_CHECKING:
    import networkx as nx

    from sfdsl.program import ParsedProgram


class StepChecks:
    """Step checks; RecipeChecker supplies error(), infer(), define(), check_block() and the tables."""

    program: ParsedProgram
    file: str
    recipe: ast.RecipeDecl
    calls: nx.DiGraph
    prompts: dict[str, ast.PromptDecl]
    models: dict[str, ast.ModelDecl]
    used_prompts: set[str]
    used_models: set[str]
    loops: list[Loop]

    if TYPE_CHECKING:  # provided by RecipeChecker

        def error(self, code: str, message: str, node: Any, hint: str | None = None) -> None: ...

        def infer(self, expr: Any, scope: Scope) -> Type: ...

        def define(self, scope: Scope, name: str, type_: Type, span: Span, kind: str = "step") -> None: ...

        def check_block(self, block: ast.Block, scope: Scope) -> bool: ...

    @staticmethod
    def prompt_texts(decl: ast.PromptDecl) -> list[str]:
        return [decl.text] if decl.text is not None else [t.text for t in decl.turns or []]

    def check_rhs(self, node: Any, scope: Scope) -> Type:
        if not ast.is_step(node):
            return self.infer(node, scope)
        return kind_of(node).check(self, node, scope)  # type: ignore[misc]

    def known_mode(self, kind: StepKind, node: Any, *, code: str, what: str, plural: str = "modes") -> Spec | None:
        """The parameter spec of a node's mode; reports an unknown mode and returns None."""
        spec = kind.spec_of(node)
        if spec is None:
            mode, names = kind.mode_of(node), list(kind.modes or {})
            self.error(code, with_suggestion(f"unknown {what} '{mode}'", mode, names), node,
                       f"{plural}: " + ", ".join(names))
        return spec

    def check_args(self, args: list[ast.Arg], spec: Spec, where: str, node: Any,
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
            if want == PROMPT:
                if not isinstance(arg.value, ast.Name) or arg.value.id not in self.prompts:
                    self.error("SF204", f"parameter '{arg.name}' of {where} must name a prompt", arg.value)
                else:
                    self.used_prompts.add(arg.value.id)
                continue
            got = self.infer(arg.value, scope)
            if want == REGEX and got == STR:
                got = want
            if not assignable(got, want):
                self.error("SF306", f"parameter '{arg.name}' of {where} expects {want}, got {got}", arg.value)
                continue
            for problem in constant_problems(arg.name, want, arg.value, where, spec[arg.name].check):
                self.error(*problem)
            for problem in range_problems(arg.name, spec[arg.name], arg.value, where):
                self.error(*problem)
            if spec[arg.name].one_of and isinstance(arg.value, ast.Const):
                allowed = spec[arg.name].one_of
                if arg.value.value not in allowed:
                    msg = with_suggestion(f"'{arg.value.value}' is not a value of '{arg.name}' for {where}",
                                          str(arg.value.value), allowed)
                    self.error("SF308", msg, arg.value, "values: " + ", ".join(repr(v) for v in allowed))
        for name, p in spec.items():
            if p.required and name not in seen:
                if p.bounds_loop:
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
        for turn in decl.turns or []:
            if turn.splice is not None and turn.role == SPLICE_ROLE:
                got = self.infer(turn.splice, scope)
                if not assignable(got, CONVERSATION):
                    self.error("SF316", f"`{SPLICE_ROLE}:` of prompt '{name}' needs a conversation, got {got}",
                               turn.splice, f"it is used by the step at line {node.span.line}")
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
            for expr in field_reads(text, decl.body_span):  # typed as the same .sf expression would be
                if root_name(expr) not in extra and scope.lookup(root_name(expr)) is not None:
                    self.infer(expr, scope)

    def use_model(self, name: str | None, node: Any) -> None:
        if name is None:
            return
        if name not in self.models:
            self.error("SF206", with_suggestion(f"unknown model '{name}'", name, self.models), node,
                       f"declare it: model {name} = llama(model: \"default\")")
        self.used_models.add(name)

    def sampled_text(self, node: ast.PromptStep, spec: Spec, where: str, scope: Scope) -> Type:
        """Check a prompt step's prompt, model and arguments; its value is text, or a list of texts given ``n:``."""
        self.use_prompt(node.prompt, node, scope)
        self.use_model(node.using, node)
        self.check_args(node.args, spec, where, node, scope)
        return list_of(TEXT) if node.returns_list else TEXT

    def loop_body(self, kind: str, body: ast.Block, scope: Scope, node: Any, *, needs: str) -> Loop:
        loop = Loop(kind)
        self.loops.append(loop)
        self.check_block(body, scope)
        self.loops.pop()
        if not loop.yields:
            self.error("SF403", f"this {kind} body needs a `{needs}` statement", node)
        return loop
