"""`sfrun fmt FILE... [--check] [--diff]`: rewrite .sf files in the canonical layout (see formatter.py)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from sfdsl.errors import CompileError, SourceNotFoundError
from sfdsl.formatter import format_source

EXIT_CHANGED, EXIT_USAGE = 1, 2


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register `sfrun fmt` on the CLI's subcommands."""
    fmt = commands.add_parser(
        "fmt", help="format .sf files in the canonical layout",
        description="Rewrite .sf files in place in the canonical layout (spacing, indentation, blank lines; "
                    "comments and prompt text kept). A directory stands for every .sf file under it; '-' reads "
                    "stdin and writes stdout.")
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".sf files or directories")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file would change")
    fmt.add_argument("--diff", action="store_true", help="change nothing; print a unified diff of the changes")
    fmt.set_defaults(handler=run)
    return fmt


def expand(paths: list[str]) -> list[Path]:
    """The files named, with directories replaced by their .sf files (sorted).

    Raises:
        SourceNotFoundError: when a path does not exist.
    """
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(path.rglob("*.sf"))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceNotFoundError(f"recipe file not found: {name}")
    return files


def run(args: argparse.Namespace) -> int:
    """Format the files; 1 when --check finds a change or a file has syntax errors."""
    if args.files == ["-"]:
        sys.stdout.write(format_source(sys.stdin.read(), file="<stdin>"))
        return 0
    changed, failed = [], False
    for path in expand(args.files):
        text = path.read_text(encoding="utf-8")
        try:
            formatted = format_source(text, file=str(path))
        except CompileError as exc:
            print(exc.render(), file=sys.stderr)
            failed = True
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), formatted.splitlines(
                keepends=True), f"{path} (original)", f"{path} (formatted)"))
        if args.check:
            print(f"would reformat {path}", file=sys.stderr)
        elif not args.diff:
            path.write_text(formatted, encoding="utf-8")
            print(f"reformatted {path}", file=sys.stderr)
    if args.check and changed:
        print(f"{len(changed)} file{'s' if len(changed) != 1 else ''} would be reformatted; run `sfrun fmt "
              f"{' '.join(str(p) for p in changed)}`", file=sys.stderr)
    return EXIT_CHANGED if failed or (args.check and changed) else 0
