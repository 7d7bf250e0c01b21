"""llama.cpp's own ``llama-batched-bench``, built from the installed llama-cpp-python's vendored sources.

Found on PATH, in ``$SFDSL_BATCHED_BENCH``, or in the cache (``~/.cache/sfdsl/bench``); otherwise
built there: ``pip download --no-binary :all: --no-deps llama-cpp-python==<installed>``, then a
CMake build of that one target. Every failure comes back as a sentence saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sfdsl" / "bench"
TARGET = "llama-batched-bench"


def find() -> Path | None:
    """An existing binary: $SFDSL_BATCHED_BENCH, PATH, or the cached build."""
    env = os.environ.get("SFDSL_BATCHED_BENCH")
    candidates = [Path(env)] if env else []
    on_path = shutil.which(TARGET)
    candidates += [Path(on_path)] if on_path else []
    candidates.append(CACHE / f"build-{version('llama-cpp-python')}" / "bin" / TARGET)
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def build(log: Path) -> tuple[Path | None, str]:
    """Download the sdist and build the target; (binary, '') or (None, why not)."""
    ver = version("llama-cpp-python")
    CACHE.mkdir(parents=True, exist_ok=True)
    src = CACHE / f"llama_cpp_python-{ver}" / "vendor" / "llama.cpp"
    out = CACHE / f"build-{ver}"
    steps: list[list[str]] = []
    if not src.is_dir():
        steps.append([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                      f"llama-cpp-python=={ver}", "-d", str(CACHE)])
    if shutil.which("cmake") is None:
        return None, "cmake is not installed"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(src), "-B", str(out), *generator, "-DCMAKE_BUILD_TYPE=Release",
                 "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF"]
    compile_ = ["cmake", "--build", str(out), "--target", TARGET, "-j", str(os.cpu_count() or 2)]
    with log.open("w") as fh:
        for cmd in steps:
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                return None, f"`{' '.join(cmd[2:5])} ...` failed (see {log})"
        if not src.is_dir():
            try:
                with tarfile.open(CACHE / f"llama_cpp_python-{ver}.tar.gz") as tar:
                    tar.extractall(CACHE, filter="data")
            except (OSError, tarfile.TarError) as exc:
                return None, f"could not unpack the llama-cpp-python {ver} sdist: {exc}"
        for cmd in (configure, compile_):
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                return None, f"`{' '.join(cmd[:2])}` failed (see {log})"
    binary = out / "bin" / TARGET
    return (binary, "") if binary.is_file() else (None, f"the build did not produce {binary}")


def run(binary: Path, model: str, *, prompt_tokens: int, gen_tokens: int, batch: int, threads: int,
        flash_attn: bool, kv_type: str, extra_buffers: bool) -> tuple[float | None, str]:
    """Generation tok/s (S_TG) of ``batch`` sequences sharing one prompt; (None, why) on failure.

    ``extra_buffers=False`` passes ``--no-repack``, as the engine does on AMX CPUs (where ggml's
    AMX buffers crash on multi-token batches).
    """
    cmd = [str(binary), "-m", model, "-c", "4096", "-b", "512", "-ub", "512", "-npp", str(prompt_tokens),
           "-ntg", str(gen_tokens), "-npl", str(batch), "-kvu", "-pps", "-fa", "on" if flash_attn else "off",
           "-ctk", kv_type, "-ctv", kv_type, "-t", str(threads), "-tb", str(threads), "--output-format", "jsonl",
           *([] if extra_buffers else ["--no-repack"])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{TARGET} did not run: {exc}"
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("{"):
            return float(json.loads(line)["speed_tg"]), ""
    return None, f"{TARGET} exited with {proc.returncode} and printed no result"
