"""What model and prompt declarations may name: the backends (declared once, here) and the chat roles."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackendDecl:
    """A backend a `model NAME = BACKEND(...)` declaration may use.

    Attributes:
        name: the word recipes write.
        factory: ``"module:Attr.path"`` of a callable building the backend from the declaration's parameters;
            imported only when a model is created (the front end never imports the runtime).
        doc: one line, for the docs.
        defaults: parameters a declaration gets unless it gives them.
        model_files: whether `sfrun --model` overrides the declaration's `model:` parameter (its paths are GGUF
            models, which may also live in the models directory or be aliases).
        paths: parameters that name a file; confined like imports (see ``sfdsl.recipe_paths``).
        arg: the parameter that ``VALUE`` of a ``--backend NAME:VALUE`` spec sets ("" when it takes none).
        arg_usage: how ``VALUE`` reads in the help, e.g. ``"BASE_URL"``.
        arg_required: whether the spec must give ``VALUE``.
        shared: whether ``--backend`` builds one instance at once that serves every model declaration, uncached
            (a script whose replies are consumed in order); otherwise each declaration gets its own, on first use.
    """

    name: str
    factory: str
    doc: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    model_files: bool = False
    paths: tuple[str, ...] = ()
    arg: str = ""
    arg_usage: str = ""
    arg_required: bool = False
    shared: bool = False

    @property
    def usage(self) -> str:
        """How a ``--backend`` spec names this backend, e.g. ``llama[:MODEL]``."""
        if not self.arg:
            return self.name
        value = self.arg_usage or self.arg.upper()
        return f"{self.name}:{value}" if self.arg_required else f"{self.name}[:{value}]"


BACKENDS: Mapping[str, BackendDecl] = {decl.name: decl for decl in (
    BackendDecl("llama", "sfdsl.runtime.backends.llama:LlamaBackend.from_params",
                "a GGUF model run in-process by llama.cpp", defaults={"model": "default"}, model_files=True,
                paths=("model", "path"), arg="model", arg_usage="MODEL"),
    BackendDecl("openai", "sfdsl.runtime.backends.openai_http:OpenAIBackend.from_params",
                "an OpenAI-compatible HTTP server", arg="base_url", arg_usage="BASE_URL[,BASE_URL...]",
                arg_required=True),
    BackendDecl("scripted", "sfdsl.runtime.pool:scripted_from_params",
                "replies read from a JSON script file (deterministic tests)", paths=("file", "script"), arg="file",
                arg_usage="FILE.json", arg_required=True, shared=True),
)}

#: The backend of a recipe that declares no model.
DEFAULT_BACKEND = "llama"

#: Roles of `chat { role: "..." }` turns.
ROLES = ("system", "user", "assistant")
#: The chat-prompt line that splices a conversation among a prompt's own turns: ``conversation: NAME``.
SPLICE_ROLE = "conversation"


def backend_usage() -> str:
    """The ``--backend`` specs every declared backend accepts, for help texts and errors."""
    return ", ".join(decl.usage for decl in BACKENDS.values())


def resolve_reference(reference: str) -> Any:
    """The object a ``"package.module:Attr.path"`` reference names, importing its module.

    Raises:
        ImportError, AttributeError: when the module or attribute does not exist.
    """
    module_name, _, path = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in path.split("."):
        target = getattr(target, part)
    return target
