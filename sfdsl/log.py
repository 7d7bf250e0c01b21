"""Library logging: structlog events routed through stdlib `logging`, silent until an application configures it.

Every sfdsl module logs through ``get_logger(__name__)``. Events become stdlib
log records on loggers named under ``"sfdsl"``, whose record message is the
structlog event dict (``ProcessorFormatter`` renders it). A ``NullHandler`` on
``"sfdsl"`` keeps the library silent when nothing is configured; to see events,
configure stdlib logging (``logging.basicConfig(level=logging.INFO)``) or use
``console_handler`` as ``sfrun`` does.

Example:
    >>> import logging, sys
    >>> logging.getLogger("sfdsl").addHandler(console_handler(sys.stderr))  # doctest: +SKIP
    >>> logging.getLogger("sfdsl").setLevel(logging.INFO)                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

ROOT = "sfdsl"
logging.getLogger(ROOT).addHandler(logging.NullHandler())

_PRE_CHAIN: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
]


def get_logger(name: str = ROOT) -> Any:
    """A structlog logger over the stdlib logger ``name`` (kept under "sfdsl"); nothing prints by default.

    Events below the stdlib logger's effective level are dropped before any processing.
    """
    if name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            *_PRE_CHAIN,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def console_handler(stream: IO[str], *, timestamps: bool = False) -> logging.Handler:
    """A stdlib handler that renders sfdsl events (and foreign records) as console lines on ``stream``."""
    handler = logging.StreamHandler(stream)
    stamp: list[Any] = [structlog.processors.TimeStamper(fmt="%H:%M:%S")] if timestamps else []
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *stamp,
                    structlog.dev.ConsoleRenderer(colors=False)],
        foreign_pre_chain=[*_PRE_CHAIN, structlog.stdlib.add_logger_name],
    ))
    return handler


def event_of(record: logging.LogRecord) -> dict[str, Any] | None:
    """The structlog event dict a record carries, or None for a plain stdlib record (handy in tests)."""
    return dict(record.msg) if isinstance(record.msg, dict) else None


def configure_logging(verbosity: int) -> None:
    """Events go to stderr: errors only with -q, warnings by default, info with -v, debug with -vv."""
    level = (logging.ERROR if verbosity < 0 else logging.WARNING if verbosity == 0
             else logging.INFO if verbosity == 1 else logging.DEBUG)
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if getattr(h, "sfrun_console", False)]:
        logger.removeHandler(old)
    handler = console_handler(sys.stderr)
    handler.sfrun_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


#: The width given to rich when stdout is not a terminal: wide enough that no row wraps (piped output stays greppable).
PIPED_WIDTH = 100_000


def output_console(**options: Any) -> Any:
    """The CLI's rich console on stdout: the terminal's width on a terminal, never wrapped when piped."""
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else PIPED_WIDTH, **options)
