"""Command-line values: a bad flag value is a usage error (exit 2) naming the flag, never an internal error."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from sfdsl import cli_values
from sfdsl.cli import main

RECIPE = 'recipe r(q: str) {\n  return answer: q\n}\n'


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.sf"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def _usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "internal error" not in err and "Traceback" not in err
    return err


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    return code, err


# ---------------------------------------------------------------- the reproductions


def test_inputs_json_nested_100k_deep_is_a_usage_error(recipe: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"q": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, err = _exit(["run", str(recipe), "--inputs-json", str(deep), "--backend", "scripted:x.json"], capsys)
    assert code == 2 and "--inputs-json" in err and "nest more than" in err


def test_inputs_json_with_a_100k_digit_integer_is_a_usage_error(recipe: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.json"
    big.write_text('{"q": ' + "7" * 100_000 + "}")
    code, err = _exit(["run", str(recipe), "--inputs-json", str(big)], capsys)
    assert code == 2 and "--inputs-json" in err and "100000 digits" in err


@pytest.mark.parametrize("seed", ["-1", "12345678901234567890123"])
def test_eval_seed_negative_or_23_digits_is_a_usage_error(seed: str, recipe: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage(["eval", str(recipe), "--data", "d.jsonl", "--seed", seed], capsys)
    assert "argument --seed" in err


def test_serve_timeout_nan_is_a_usage_error(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --timeout" in _usage(["serve", str(recipe), "--timeout", "nan"], capsys)


def test_cache_max_mb_inf_is_a_usage_error(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --cache-max-mb" in _usage(["serve", str(recipe), "--cache-max-mb", "inf"], capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e7", "x", "9" * 5000])
@pytest.mark.parametrize(("command", "flag"), [("run", "--timeout"), ("eval", "--item-timeout"),
                                               ("serve", "--timeout"), ("tune", "--item-timeout")])
def test_timeout_flags_follow_one_rule(command: str, flag: str, value: str, recipe: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--data", "d.jsonl"] if command in ("eval", "tune") else []
    assert f"argument {flag}" in _usage([command, str(recipe), *extra, flag, value], capsys)


@pytest.mark.parametrize(("argv", "flag"), [
    (["run", "{r}", "--seed", "-5"], "--seed"),
    (["run", "{r}", "--max-calls", "0"], "--max-calls"),
    (["run", "{r}", "--max-tokens", "1" * 400], "--max-tokens"),
    (["serve", "{r}", "--port", "65536"], "--port"),
    (["serve", "{r}", "--max-concurrency", "nan"], "--max-concurrency"),
    (["eval", "{r}", "--data", "d", "--samples", "10000000000"], "--samples"),
    (["eval", "{r}", "--data", "d", "--worker-cpus", "nan"], "--worker-cpus"),
    (["data", "make", "arithmetic", "--n", "-3"], "--n"),
    (["tune", "{r}", "--data", "d", "--seed", "-1"], "--seed"),
])
def test_every_numeric_flag_names_itself_when_bad(argv: list[str], flag: str, recipe: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert f"argument {flag}" in _usage([a.replace("{r}", str(recipe)) for a in argv], capsys)


# ---------------------------------------------------------------- the types themselves


def test_seconds_accepts_finite_positive_values_only() -> None:
    assert cli_values.seconds("2.5") == 2.5 and cli_values.seconds("1e6") == 1e6
    for bad in ("0", "-0.1", "nan", "inf", "-inf", "1e6000", "1.5x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_values.seconds(bad)


def test_integer_bounds_and_seeds() -> None:
    assert cli_values.seed("0") == 0 and cli_values.seed(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 4294967295"):
        cli_values.seed(str(2**32))
    assert cli_values.integer(1)("10") == 10
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        cli_values.integer(1)("0")


def test_positive_keeps_its_old_meaning_without_nan() -> None:
    assert cli_values.positive(int, zero=True)("0") == 0
    assert cli_values.positive(float)("0.5") == 0.5
    for bad in ("nan", "inf", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_values.positive(float)(bad)
    assert math.isclose(cli_values.positive(float, maximum=10)("10"), 10)


def test_load_inputs_json_refuses_nan_and_reads_good_files(tmp_path: Path) -> None:
    from sfdsl.errors import InputError

    good = tmp_path / "good.json"
    good.write_text('{"q": "a [ \\" { string", "n": [1, {"k": 2}]}')
    assert cli_values.load_inputs_json(str(good)) == {"q": 'a [ " { string', "n": [1, {"k": 2}]}
    bad = tmp_path / "nan.json"
    bad.write_text('{"x": NaN}')
    with pytest.raises(InputError, match="NaN"):
        cli_values.load_inputs_json(str(bad))
    with pytest.raises(InputError, match="cannot read"):
        cli_values.load_inputs_json(str(tmp_path / "missing.json"))


def test_serve_on_a_port_in_use_is_a_usage_error_naming_the_flags(recipe: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    script = tmp_path / "x.json"
    script.write_text("[]")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _exit(["serve", str(recipe), "--port", str(port), "--backend", f"scripted:{script}"], capsys)
    assert code == 2 and "--host/--port" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["missing-dir/t.jsonl", "."])
def test_trace_that_cannot_be_written_is_a_usage_error(where: str, recipe: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / where)
    assert "argument --trace" in _usage(["run", str(recipe), "--trace", target], capsys)
