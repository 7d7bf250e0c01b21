"""`sfrun lsp`: start the language server on stdio (needs the ``[lsp]`` extra, i.e. pygls)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_USAGE = 2


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register `sfrun lsp` on the CLI's subcommands."""
    lsp = commands.add_parser(
        "lsp", help="run the language server (LSP over stdio)",
        description="Serve diagnostics, hover, completion, go-to-definition, references, symbols, code actions "
                    "and formatting for .sf files to an editor, over stdio. Needs `pip install 'sfdsl[lsp]'`.")
    lsp.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default; for editors "
                                                          "that pass it)")
    lsp.set_defaults(handler=run)
    return lsp


def run(args: argparse.Namespace) -> int:
    """Serve until the editor disconnects."""
    try:
        from sfdsl.lsp.server import build_server
    except ImportError as exc:
        print(f"sfrun: error: `sfrun lsp` needs pygls ({exc.name} is missing): pip install 'sfdsl[lsp]'",
              file=sys.stderr)
        return EXIT_USAGE
    build_server(import_path=list(args.import_path)).start_io()
    return 0
