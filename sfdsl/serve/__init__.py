"""`sfrun serve`: recipes as OpenAI-compatible models over HTTP (starlette app, uvicorn server)."""

from __future__ import annotations

from sfdsl.serve.app import create_app, default_pool_factory
from sfdsl.serve.config import ServeConfig
from sfdsl.serve.registry import RecipeRegistry

__all__ = ["RecipeRegistry", "ServeConfig", "create_app", "default_pool_factory"]
