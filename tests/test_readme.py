"""README.md cannot drift: every code block is checked, and run where it says so; its printed figures are real.

How a block is tested is set by an HTML comment on the line just above its opening fence (GitHub does not show
it): ``<!-- readme-test: MODE [note] -->``. A block without one is ``static``. New blocks must follow this:

* ``static`` (the default): checked without running anything. A ``python`` block must compile as a module (no
  top-level ``await``) and use no name it does not define or import. Every ``sfrun`` command of a ``bash``
  block, or of a ``$ ``-prompted transcript, must parse with sfrun's own argument parser.
* ``run``: static, then run as written from the repository root (a ``python`` block as a script, a ``bash``
  block line by line). For blocks that need no model, no server and no network.
* ``scripted``: a ``bash`` block run line by line in a scratch directory (``recipes/`` and ``tests/`` linked
  in), each ``sfrun run|eval|serve|mcp`` given ``--backend scripted:FILE --no-cache``, whose script answers
  every prompt with "The answer is 4.".
* ``output``: a transcript (``$ COMMAND`` lines, each followed by what it prints). Each command runs from the
  repository root; the printed lines must appear in the real output in order, and a transcript without
  ``…`` must match it exactly.
* ``real-model``: static, then run as written (it loads SmolLM2 or starts a server on it); marked
  ``real_model``, so ``-m "not real_model"`` skips it.
* ``skip``: not checked at all (a deliberately broken example); say why in the note.

So: a block that needs a real model says ``real-model``; one that needs a server, GPU or network stays
``static`` (say why in the note); a shell block that runs recipes is ``scripted`` when a canned answer shows
what it does.
"""

from __future__ import annotations

import builtins
import os
import re
import shlex
import subprocess
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfdsl.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKER = re.compile(r"^<!-- readme-test: ([a-z-]+)(?: (.*?))? -->$")
MODES = ("static", "run", "scripted", "output", "real-model", "skip")
SHELL = ("bash", "sh", "shell", "console")
RUNS_RECIPES = ("run", "eval", "serve", "mcp")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    lang: str
    text: str
    line: int
    mode: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang or 'text'}-{self.mode}"

    @property
    def is_transcript(self) -> bool:
        return self.lang in SHELL + ("",) and self.text.lstrip().startswith("$ ")


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block with the mode its marker gives (``static`` without one)."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.match(above.strip())
        mode = marker.group(1) if marker else "static"
        found.append(Block(opening.group(1), "\n".join(lines[i + 1:end]) + "\n", i + 1, mode))
        i = end + 1
    return found


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
CHECKED = [b for b in BLOCKS if b.mode != "skip"]


def commands(block: Block) -> list[str]:
    """The shell commands of a block: continuation lines joined; a transcript's `$ ` lines only."""
    out: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if block.is_transcript:  # `$ COMMAND`, its indented continuation lines, then its output
            if line.startswith("$ "):
                out.append(pending)
                pending = line[2:].removesuffix("\\")
            elif pending and raw.startswith((" ", "\t")):
                pending += " " + line.strip().removesuffix("\\")
            else:
                out.append(pending)
                pending = ""
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1]
        else:
            out.append(pending)
            pending = ""
    out.append(pending)
    return [c.strip() for c in out if c.strip()]


def sfrun_argv(command: str) -> list[str] | None:
    """The arguments of an `sfrun` command (before any redirection, pipe or comment); None for other commands."""
    words = shlex.split(command, comments=True)
    cut = next((i for i, w in enumerate(words) if w in ("|", ">", ">>", "2>&1", "&", "&&", ";")
                or w.startswith((">", "2>"))), len(words))
    words = words[:cut]
    return words[1:] if words and words[0] == "sfrun" else None


def undefined_names(source: str) -> set[str]:
    """Names a module-level script reads but neither defines, imports nor gets from builtins."""
    table = symtable.symtable(source, "README", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    missing: set[str] = set()
    stack = [table]
    while stack:
        scope = stack.pop()
        for symbol in scope.get_symbols():
            name = symbol.get_name()
            global_read = symbol.is_referenced() and (symbol.is_global() or scope is table)
            if global_read and name not in defined and not hasattr(builtins, name):
                missing.add(name)
        stack.extend(scope.get_children())
    return missing


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _shell(command: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    sfrun = f"sfrun() {{ {shlex.quote(sys.executable)} -m sfdsl.cli \"$@\"; }}\n"
    return subprocess.run(["bash", "-c", sfrun + command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _check_static(block: Block) -> None:
    if block.lang == "python":
        compile(block.text, f"README.md:{block.line}", "exec")  # a top-level await is a SyntaxError here
        missing = undefined_names(block.text)
        assert not missing, (f"README.md:{block.line}: the block uses {sorted(missing)} without defining them; "
                             "define them in the block (each block stands alone), or mark it: see tests/test_readme.py")
    if block.lang in SHELL or block.is_transcript:
        parser = build_parser()
        for command in commands(block):
            argv = sfrun_argv(command)
            if argv is None:
                continue
            try:
                parser.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(f"README.md:{block.line}: sfrun rejects `{command}` (exit {exc.code}); fix the command, "
                            "or mark the block `skip` with a reason: see tests/test_readme.py")


def _run_as_written(block: Block) -> None:
    if block.lang == "python":
        done = subprocess.run([sys.executable, "-c", block.text], cwd=REPO, env=_env(), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"README.md:{block.line}:\n{done.stderr[-3000:]}"
        return
    for command in commands(block):
        done = _shell(command, REPO)
        assert done.returncode == 0, f"README.md:{block.line}: `{command}`:\n{done.stderr[-3000:]}"


def test_every_marker_names_a_mode() -> None:
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    markers = [m.group(1) for m in (MARKER.match(line) for line in lines) if m]
    assert markers and set(markers) <= set(MODES)


@pytest.mark.parametrize("block", CHECKED, ids=[b.id for b in CHECKED])
def test_block_is_valid_as_written(block: Block) -> None:
    _check_static(block)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "run"],
                         ids=[b.id for b in BLOCKS if b.mode == "run"])
def test_run_block_runs(block: Block) -> None:
    _run_as_written(block)


@pytest.mark.real_model
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "real-model"],
                         ids=[b.id for b in BLOCKS if b.mode == "real-model"])
def test_real_model_block_runs(block: Block) -> None:
    _run_as_written(block)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "scripted"],
                         ids=[b.id for b in BLOCKS if b.mode == "scripted"])
def test_scripted_block_runs_on_the_scripted_backend(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('{"": "The answer is 4."}', encoding="utf-8")
    for name in ("recipes", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    for command in commands(block):
        argv = sfrun_argv(command)
        if argv is not None:
            at = next(i for i, word in enumerate(argv) if not word.startswith("-"))
            if argv[at] in RUNS_RECIPES:
                extra = f" --backend scripted:{shlex.quote(str(script))} --no-cache"
                command = re.sub(rf"\b{argv[at]}\b", argv[at] + extra, command, count=1)
        done = _shell(command, tmp_path)
        assert done.returncode == 0, f"README.md:{block.line}: `{command}`:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "output"],
                         ids=[b.id for b in BLOCKS if b.mode == "output"])
def test_output_block_matches_the_real_output(block: Block) -> None:
    chunks = re.split(r"^\$ ", block.text, flags=re.MULTILINE)[1:]
    for chunk in chunks:
        command, *shown = chunk.rstrip("\n").split("\n")
        real = _shell(command, REPO)
        got = (real.stdout + real.stderr).rstrip("\n").split("\n")
        if ELLIPSIS not in shown:
            assert got == shown, f"README.md:{block.line}: `{command}`"
            continue
        at = 0
        for line in (s for s in shown if s != ELLIPSIS):
            assert line in got[at:], f"README.md:{block.line}: `{command}` does not print {line!r}"
            at = got.index(line, at) + 1
        assert got[-1] == shown[-1], f"README.md:{block.line}: `{command}` ends {got[-1]!r}"


def test_the_served_recipe_count_is_real() -> None:
    from sfdsl.serve import RecipeRegistry

    counts = re.findall(r"^serving (\d+) recipes as models", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert counts and {int(c) for c in counts} == {len(RecipeRegistry.from_path(REPO / "recipes"))}


def test_the_static_checks_catch_the_old_drift() -> None:
    with pytest.raises(SyntaxError):
        compile("result = await recipe.arun({})\n", "README", "exec")
    assert undefined_names("import sfdsl\nfor q in questions:\n    print(sfdsl, q)\n") == {"questions"}
    assert undefined_names("def f(x):\n    return model.invoke(x)\nmodel = 1\n") == set()
    assert sfrun_argv("sfrun eval a.sf --data x.jsonl > out.txt  # note") == ["eval", "a.sf", "--data", "x.jsonl"]
