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
    """

    name: str
    factory: str
    doc: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    model_files: bool = False
    paths: tuple[str, ...] = ()


BACKENDS: Mapping[str, BackendDecl] = {decl.name: decl for decl in (
    BackendDecl("llama", "sfdsl.runtime.backends.llama:LlamaBackend.from_params",
                "a GGUF model run in-process by llama.cpp", defaults={"model": "default"}, model_files=True,
                paths=("model", "path")),
    BackendDecl("openai", "sfdsl.runtime.backends.openai_http:OpenAIBackend.from_params",
                "an OpenAI-compatible HTTP server"),
    BackendDecl("scripted", "sfdsl.runtime.pool:scripted_from_params",
                "replies read from a JSON script file (deterministic tests)", paths=("file", "script")),
)}

#: The backend of a recipe that declares no model.
DEFAULT_BACKEND = "llama"

#: Roles of `chat { role: "..." }` turns.
ROLES = ("system", "user", "assistant")


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
