"""Typed wrappers over llama-cpp-python's low-level C API: import, load, tokenize, free.

Everything here runs on whichever thread owns the :class:`LoadedModel`; the
engine hands it to its decode thread right after loading.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from sfdsl.errors import BackendError, ModelNotFoundError
from sfdsl.log import get_logger

log = get_logger(__name__)

FlashAttn = Literal["auto"] | bool
KvType = Literal["auto", "f16", "bf16", "f32"]
MAX_SEQS = 256  # LLAMA_MAX_SEQ
_GGML_TYPES = {"f32": 0, "f16": 1, "bf16": 30}  # ggml_type ids


def import_llama_cpp() -> ModuleType:
    """The ``llama_cpp`` module, or a BackendError that says how to install it."""
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:
        raise BackendError(
            "the llama.cpp backend needs llama-cpp-python (`pip install llama-cpp-python`; "
            f"see the README for CUDA builds); importing it failed: {exc}"
        ) from exc
    _route_llama_logs(llama_cpp)
    return llama_cpp


@functools.cache
def _route_llama_logs(lib: ModuleType) -> Any:
    """Send llama.cpp's own log lines to the ``sfdsl.llama_cpp`` logger at debug level, never to stderr.

    llama-cpp-python's default callback prints errors to stderr, and llama.cpp reports conditions the
    engine handles itself (a full KV cache before a preemption) as errors; failures reach callers as
    sfdsl errors instead. The cache keeps the ctypes callback alive for the life of the process.
    """
    llama_log = logging.getLogger("sfdsl.llama_cpp")

    @lib.llama_log_callback  # type: ignore[untyped-decorator]
    def route(level: int, text: bytes, user_data: Any) -> None:
        if llama_log.isEnabledFor(logging.DEBUG):
            llama_log.debug("%s", text.decode("utf-8", "replace").rstrip())

    lib.llama_log_set(route, ctypes.c_void_p(0))
    return route


def default_threads() -> int:
    """CPU threads for decoding: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_amx() -> bool:
    """Whether the CPU advertises Intel AMX tiles (Linux only; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        pass
    return False


def pin_row_kernels() -> None:
    """Keep ggml's CPU matmul on its row-by-row kernels for every batch size (batch invariance).

    ggml's tiled K-quant matmul (``GGML_CPU_TILED_MM``, on by default) takes batches of 8 or more
    rows and sums in another order than the one-row kernel, so a token's logits would depend on
    whether a prefill shares its step. ggml reads the switch once per process, at its first
    matrix product; a value the user set is kept.
    """
    os.environ.setdefault("GGML_CPU_TILED_MM", "0")


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """How to load one GGUF model and size its context."""

    path: Path
    n_ctx: int = 0  # total KV cells shared by all sequences; 0 = min(train ctx, 4096)
    n_seq_max: int = 16  # sequences one request may use at once
    prefix_cache: int = 16  # extra sequence slots that keep finished sequences' KV cells for reuse; 0 = off
    n_batch: int = 512
    n_gpu_layers: int | None = None  # None = all layers when offload is supported, else 0
    main_gpu: int = 0
    # On by default: with it off, attention sums run over every KV cell in SIMD lanes fixed by
    # the cell's index, so a sequence's logits depend on where its cells lie and what shares its batch.
    flash_attn: FlashAttn = True
    # KV cell type. "auto" = bf16 on CPU, f16 when layers are offloaded to a GPU. With bf16 the CPU
    # flash-attention kernel takes one path for every batch (f16/f32 cells switch to a tiled kernel
    # at >= 64 batch tokens and to a split-KV kernel for lone tokens) and accumulates in f32, so a
    # sequence's logits are bitwise the same whatever shares its batch or where its cells lie.
    kv_type: KvType = "auto"
    n_threads: int | None = None
    # ggml "extra" CPU buffer types (AMX, weight repacking). "auto" disables them on
    # AMX CPUs: ggml's AMX matmul segfaults on multi-token batches in llama-cpp-python 0.3.36.
    extra_buffers: Literal["auto"] | bool = "auto"
    # Schedule so a sequence's logits never depend on what else runs (see Engine): no KV cell is
    # freed while a sequence runs, and jobs are admitted by their worst-case KV need. It takes one
    # extra sequence id (where finished sequences' cells wait for the next clear). False: the
    # faster optimistic schedule (admission by actual use, preemption), which is not batch-invariant.
    # "auto" = on when every layer runs on the CPU; off with GPU offload, whose kernels pick
    # batch-size paths of their own, so the schedule would cost throughput without making runs repeat.
    batch_invariant: Literal["auto"] | bool = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.n_seq_max <= MAX_SEQS:
            raise ValueError(f"n_seq_max must be in 1..{MAX_SEQS}, got {self.n_seq_max}")
        grave = self.batch_invariant is not False  # an invariant engine keeps one sequence id for itself
        most = MAX_SEQS - self.n_seq_max - grave
        if not 0 <= self.prefix_cache <= most:
            raise ValueError(f"prefix_cache must be in 0..{most} (n_seq_max + prefix_cache "
                             f"<= {MAX_SEQS - grave}), got {self.prefix_cache}")
        if self.batch_invariant not in ("auto", True, False):
            raise ValueError(f"batch_invariant must be auto, true or false; got {self.batch_invariant!r}")
        if self.n_batch < 8:
            raise ValueError(f"n_batch must be at least 8, got {self.n_batch}")
        if self.n_ctx < 0:
            raise ValueError(f"n_ctx must be >= 0, got {self.n_ctx}")
        if self.kv_type not in ("auto", *_GGML_TYPES):
            raise ValueError(f"kv_type must be one of auto, {', '.join(_GGML_TYPES)}; got {self.kv_type!r}")


class LoadedModel:
    """One llama model, its vocab and one context; freed by :meth:`close`."""

    def __init__(self, params: ModelParams) -> None:
        lib = import_llama_cpp()
        self.lib = lib
        self.params = params
        if not params.path.is_file():
            raise ModelNotFoundError(f"model file {params.path} does not exist")
        lib.llama_backend_init()
        offload = bool(lib.llama_supports_gpu_offload())
        n_gpu_layers = params.n_gpu_layers if params.n_gpu_layers is not None else (-1 if offload else 0)
        auto = params.batch_invariant == "auto"
        self.batch_invariant = n_gpu_layers == 0 if auto else bool(params.batch_invariant)
        if self.batch_invariant:
            pin_row_kernels()
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        mparams.main_gpu = params.main_gpu
        extra = params.extra_buffers if params.extra_buffers != "auto" else not cpu_has_amx()
        mparams.use_extra_bufts = extra
        self.on_cpu = n_gpu_layers == 0  # every layer on the CPU (decoded by OpenMP threads)
        self.model = lib.llama_model_load_from_file(str(params.path).encode(), mparams)
        if not self.model:
            raise BackendError(f"llama.cpp could not load {params.path} (not a GGUF model, or unsupported arch)")
        self.ctx: Any = None
        self._pieces: dict[int, bytes] = {}  # token -> bytes: the vocabulary never changes
        self._eog: dict[int, bool] = {}
        try:
            self.vocab = lib.llama_model_get_vocab(self.model)
            self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
            train_ctx = int(lib.llama_model_n_ctx_train(self.model))
            n_ctx = params.n_ctx or min(train_ctx, 4096)
            cparams = lib.llama_context_default_params()
            cparams.n_ctx = n_ctx
            cparams.n_batch = params.n_batch
            cparams.n_ubatch = params.n_batch
            cparams.n_seq_max = params.n_seq_max + params.prefix_cache + self.batch_invariant  # + the grave id
            cparams.kv_unified = True  # seq copies share cells: prefix sharing costs no memory
            threads = params.n_threads or default_threads()
            cparams.n_threads = threads
            cparams.n_threads_batch = threads
            cparams.flash_attn_type = _flash_attn_enum(lib, params.flash_attn)
            self.kv_type = params.kv_type if params.kv_type != "auto" else ("f16" if n_gpu_layers else "bf16")
            cparams.type_k = cparams.type_v = _GGML_TYPES[self.kv_type]
            cparams.no_perf = True
            self.ctx = lib.llama_init_from_model(self.model, cparams)
            if not self.ctx:
                raise BackendError(
                    f"llama.cpp could not create a context (n_ctx={n_ctx}, n_seq_max={params.n_seq_max}); "
                    "try a smaller n_ctx or fewer GPU layers"
                )
            self.mem = lib.llama_get_memory(self.ctx)
            self.n_ctx = int(lib.llama_n_ctx(self.ctx))
            self.n_ctx_seq = int(lib.llama_n_ctx_seq(self.ctx))
            self.n_batch = int(lib.llama_n_batch(self.ctx))
            self.n_seq_total = int(lib.llama_n_seq_max(self.ctx))  # request sequences + prefix-cache slots (+ grave)
            self.n_seq_max = params.n_seq_max
            self.add_bos = bool(lib.llama_vocab_get_add_bos(self.vocab))
        except BaseException:
            self.close()
            raise
        log.info(
            "model_loaded",
            path=str(params.path),
            gpu_offload_supported=offload,
            n_gpu_layers=n_gpu_layers,
            n_layer=int(lib.llama_model_n_layer(self.model)),
            n_ctx=self.n_ctx,
            n_ctx_train=train_ctx,
            n_seq_max=self.n_seq_max,
            prefix_cache=params.prefix_cache,
            n_batch=self.n_batch,
            n_threads=threads,
            flash_attn=params.flash_attn,
            kv_type=self.kv_type,
            extra_buffers=extra,
            batch_invariant=self.batch_invariant,
        )

    # -- tokens ----------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Token ids of ``text``; BOS is added when ``add_special`` and the model wants it."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self.lib.llama_token * cap)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (self.lib.llama_token * cap)()
            n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise BackendError(f"tokenization failed for a {len(data)}-byte text")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The raw bytes that ``token`` stands for (special tokens render as nothing); cached per token."""
        found = self._pieces.get(token)
        if found is None:
            found = self._pieces[token] = self._piece(token)
        return found

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens`` (used for tests and logging)."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        found = self._eog.get(token)
        if found is None:
            found = self._eog[token] = bool(self.lib.llama_vocab_is_eog(self.vocab, token))
        return found

    def token_text(self, token: int) -> str:
        """The vocabulary text of a (special) token, e.g. ``<|im_end|>``; '' if none."""
        if token < 0:
            return ""
        raw = self.lib.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    # -- metadata --------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or None when the key is absent."""
        size = 1 << 12
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lib.llama_model_meta_val_str(self.model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def chat_template(self) -> str | None:
        """The model's default chat template (Jinja source), if the GGUF has one."""
        raw = self.lib.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    def close(self) -> None:
        """Free the context and the model; safe to call twice."""
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            self.lib.llama_model_free(self.model)
            self.model = None


def _flash_attn_enum(lib: ModuleType, value: FlashAttn) -> int:
    if value == "auto":
        return int(lib.LLAMA_FLASH_ATTN_TYPE_AUTO)
    return int(lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if value else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED)
