"""What one `sfrun serve` process allows: limits, caps and fixed inputs, in one frozen record."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sfdsl.admission import SERVE_DEFAULTS


class ServeConfig(BaseModel):
    """Limits of a served app. Every limit is per process.

    Attributes:
        max_concurrency: recipe runs executing at once.
        max_queue: requests waiting for a run slot; beyond it, 429 with ``Retry-After``.
        timeout_s: seconds a request may wait and run before it gets a 504.
        max_body_bytes: largest request body; larger ones get a 413 while they are being read.
        body_timeout_s: seconds a client has to send its whole body; stalled ones get a 408.
        max_json_depth: deepest nesting of arrays and objects in a body.
        max_n: largest ``n`` a request may ask for (as a field or as an explicit input).
        inputs: inputs fixed for every run (``-i key=value``), under what a request gives.
        cache_max_bytes: bound of the on-disk cache of each pool; None disables the cache.
        pinned: inputs fixed for every run (``--pin-input key=value``); a request may not change them.
        max_request_calls, max_request_tokens, max_request_parallel: caps on a request's static bound
            (model calls, generated tokens, sequences at once), computed with its inputs; None: no cap.
        max_input_chars: longest text a request may give one input (a message, or a list's texts together).
        max_run_memory_bytes: bytes of values one run may create (Budget.max_memory_bytes); None: no ceiling.
        max_drain_bytes: most bytes of an oversized body read and dropped, so that its 413 arrives whole.
    """

    model_config = ConfigDict(frozen=True)

    max_concurrency: int = Field(default=8, ge=1)
    max_queue: int = Field(default=256, ge=0)
    timeout_s: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    body_timeout_s: float = Field(default=10.0, gt=0)
    max_json_depth: int = Field(default=32, ge=2)
    max_n: int = Field(default=32, ge=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    cache_max_bytes: int | None = Field(default=256 << 20, ge=1)
    pinned: dict[str, Any] = Field(default_factory=dict)
    max_request_calls: int | None = Field(default=SERVE_DEFAULTS.max_calls, ge=1)
    max_request_tokens: int | None = Field(default=SERVE_DEFAULTS.max_tokens, ge=1)
    max_request_parallel: int | None = Field(default=SERVE_DEFAULTS.max_parallel, ge=1)
    max_input_chars: int = Field(default=500_000, ge=1)
    max_run_memory_bytes: int | None = Field(default=64 << 20, ge=1)
    max_drain_bytes: int = Field(default=64 << 20, ge=0)
