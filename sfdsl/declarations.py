"""What model and prompt declarations may name: backend names, chat roles, and model-level defaults."""

from __future__ import annotations

#: Backend names a `model NAME = BACKEND(...)` may use; runtime/pool.py maps each to a factory.
BACKENDS = ("llama", "openai", "scripted")

#: The backend a recipe without a model declaration runs on, and its parameters.
DEFAULT_BACKEND = ("llama", {"model": "default"})

#: Roles of `chat { role: "..." }` turns.
ROLES = ("system", "user", "assistant")
