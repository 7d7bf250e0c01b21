"""Benchmark: how much sfdsl's batching engine speeds up n-sample decoding over sequential calls.

Scenario 1 (one prompt, ``--n`` samples of ``--max-tokens`` tokens, temperature 0.7, fixed seeds):
  (a) one sample through sfdsl's LlamaBackend;
  (b) n samples one after another through ``llama_cpp.Llama`` (what peers do);
  (c) the same n samples as a `vote` step of a compiled .sf recipe, run by the sfdsl
      runtime (executor, budget accounting, trace) on the same engine;
  (d) a bare low-level batched loop with nothing around it: the ceiling.
(b) and (d) run in a child process of their own (see PeerProcess: two decoding threads in one
process slow llama.cpp's OpenMP build), as their users would run them.
Scenario 2: ``--concurrent`` recipe runs x n samples, one after another vs all at once
(cross-request batching: the engine merges the runs' sequences into one batch).
In every round, llama.cpp's own ``llama-batched-bench`` (found or built, see cpp_bench.py) at
B=n right after (c) and at B=n*concurrent after (f): (c) against the C++ ceiling, and the most
cross-request batching can gain on this machine, with per-round figures.
Then, once each: fairness (three small requests beside a long prompt vs alone), the prefix
cache (self_refine, 4 rounds, with vs without) and flash attention off vs on (bare decode).

Throughput counts the tokens actually generated (a sample may end early at EOS).
Run: ``python benchmarks/bench_batching.py --repeat 3``; quick: ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

try:
    from benchmarks import cpp_bench, engine_scenarios
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import cpp_bench  # type: ignore[no-redef]
    import engine_scenarios  # type: ignore[no-redef]

import sfdsl
from sfdsl.models import resolve_model_path
from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt
from sfdsl.runtime.backends.llama import LlamaBackend
from sfdsl.runtime.llama_lib import cpu_has_amx, default_threads, import_llama_cpp
from sfdsl.runtime.pool import BackendPool

SampleFn = Callable[[], Awaitable[int]]  # runs one workload, returns the tokens it generated
TOPICS = ("a robot who learns to paint", "a lighthouse keeper", "a city under the sea", "the last dragon")


@dataclass(frozen=True)
class Result:
    seconds: float
    tokens: int

    @property
    def tps(self) -> float:
        return self.tokens / self.seconds


def story_prompt(topic: str) -> Prompt:
    return Prompt(messages=(Message(role="user", content=f"Write a long story about {topic}."),))


VOTE_RECIPE = """
recipe vote_bench(text: str, n: int = 8, max_tokens: int = 64, seed: int = 0) {
  prompt p = "{{ text }}"
  samples = generate p (n: n, temperature: 0.7, max_tokens: max_tokens, seed: seed)
  answers = extract text from samples
  return vote answers by majority
}
"""


def recipe_sampler(pool: BackendPool, text: str, *, n: int, max_tokens: int, seed: int) -> SampleFn:
    """(c): the n samples as a vote step of a real recipe, through the whole sfdsl runtime."""
    recipe = sfdsl.compile(VOTE_RECIPE).recipe()

    async def sample() -> int:
        result = await recipe.arun({"text": text, "n": n, "max_tokens": max_tokens, "seed": seed}, backend=pool)
        return result.cost.completion_tokens

    return sample


def backend_sampler(backend: LlamaBackend, prompt: Prompt, *, n: int, max_tokens: int, seed: int) -> SampleFn:
    """The default vote step: one n-sample generate request."""

    async def sample() -> int:
        req = GenerateRequest(prompt=prompt, n=n, temperature=0.7, max_tokens=max_tokens, seed=seed)
        return sum(c.completion_tokens for c in await backend.generate(req))

    return sample


async def measure_vote(sample: SampleFn) -> Result:
    """Time one vote step (c); ``sample`` may be any sfdsl-level callable."""
    start = time.perf_counter()
    tokens = await sample()
    return Result(time.perf_counter() - start, tokens)


async def measure_concurrent(samples: list[SampleFn], *, together: bool) -> Result:
    start = time.perf_counter()
    if together:
        tokens = sum(await asyncio.gather(*(s() for s in samples)))
    else:
        tokens = 0
        for s in samples:
            tokens += await s()
    return Result(time.perf_counter() - start, tokens)


def peer_llama(path: str, *, n_threads: int, flash_attn: bool) -> Any:
    """A high-level ``llama_cpp.Llama`` configured like the engine (same threads, attention, buffers)."""
    lib = import_llama_cpp()
    import llama_cpp.llama_cpp as raw  # what llama_cpp.Llama calls

    original = raw.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = not cpu_has_amx()  # same AMX workaround as the engine
        return params

    raw.llama_model_default_params = patched
    try:
        gpu_layers = -1 if lib.llama_supports_gpu_offload() else 0  # same offload as the engine's default
        return lib.Llama(path, n_ctx=2048, n_batch=512, n_threads=n_threads, flash_attn=flash_attn,
                         n_gpu_layers=gpu_layers, verbose=False)
    finally:
        raw.llama_model_default_params = original


def measure_peer(llm: Any, text: str, *, n: int, max_tokens: int, seed: int) -> Result:
    """(b): n samples, one ``create_completion`` call each (the prompt KV is reused between calls)."""
    start = time.perf_counter()
    tokens = 0
    for i in range(n):
        out = llm.create_completion(
            text, max_tokens=max_tokens, temperature=0.7, top_p=1.0, top_k=0, min_p=0.0, seed=seed + i
        )
        tokens += out["usage"]["completion_tokens"]
    return Result(time.perf_counter() - start, tokens)


class BareLoop:
    """(d): prompt decoded once, KV copied to n sequences, one llama_decode per step; no sfdsl."""

    def __init__(self, path: str, *, n: int, n_threads: int, flash_attn: bool, kv_type: int = 30) -> None:
        lib = self.lib = import_llama_cpp()
        mparams = lib.llama_model_default_params()
        mparams.use_extra_bufts = not cpu_has_amx()
        self.model = lib.llama_model_load_from_file(path.encode(), mparams)
        cparams = lib.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch, cparams.n_seq_max = 8192, 512, 512, n
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.kv_unified = True
        cparams.type_k = cparams.type_v = kv_type  # bf16 by default, like the engine on CPU
        on, off = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED, lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.flash_attn_type = on if flash_attn else off
        self.ctx = lib.llama_init_from_model(self.model, cparams)
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.batch = lib.llama_batch_init(512, 0, 1)
        self.n = n

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq

    def run(self, text: str, *, max_tokens: int, seed: int) -> Result:
        lib, ctx = self.lib, self.ctx
        start = time.perf_counter()
        data = text.encode()
        buf = (lib.llama_token * (len(data) + 8))()
        n_prompt = lib.llama_tokenize(self.vocab, data, len(data), buf, len(buf), True, True)
        samplers = []
        for i in range(self.n):
            chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(0.7))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed + i))
            samplers.append(chain)
        for p in range(n_prompt):
            self._put(p, buf[p], p, 0, p == n_prompt - 1)
        self.batch.n_tokens = n_prompt
        assert lib.llama_decode(ctx, self.batch) == 0
        mem = lib.llama_get_memory(ctx)
        for s in range(1, self.n):
            lib.llama_memory_seq_cp(mem, 0, s, -1, -1)
        live = {s: n_prompt - 1 for s in range(self.n)}  # seq -> batch index of its logits
        tokens, pos = 0, n_prompt
        for _ in range(max_tokens):
            nxt = {}
            for s, idx in live.items():
                tok = lib.llama_sampler_sample(samplers[s], ctx, idx)
                if not lib.llama_vocab_is_eog(self.vocab, tok):
                    nxt[s] = tok
            tokens += len(nxt)
            if not nxt or _ == max_tokens - 1:
                break
            for i, (s, tok) in enumerate(nxt.items()):
                self._put(i, tok, pos, s, True)
            self.batch.n_tokens = len(nxt)
            assert lib.llama_decode(ctx, self.batch) == 0
            live = {s: i for i, s in enumerate(nxt)}
            pos += 1
        elapsed = time.perf_counter() - start
        for s in range(self.n):
            lib.llama_memory_seq_rm(mem, s, -1, -1)
            lib.llama_sampler_free(samplers[s])
        return Result(elapsed, tokens)

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)


class PeerProcess:
    """(b) and the bare loops (d), run in a child process of their own.

    llama-cpp-python's OpenMP build gives every OS thread that calls ``llama_decode`` its own
    worker team. Once two teams exist in one process (the engine's thread and this one),
    libgomp counts more threads than cores and stops spin-waiting at its barriers, which
    slowed every path here 1.4-2.3x. A peer's users run it alone, so it is measured alone.
    """

    def __init__(self, path: str, *, n: int, n_threads: int, flash_attn: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_peer_main, args=(child, path, n, n_threads, flash_attn), daemon=True)
        self._proc.start()

    def call(self, what: str, *args: Any, **kwargs: Any) -> Result:
        """Run ``what`` (peer, bare or bare_fa_off) in the child; its Result."""
        self._conn.send((what, args, kwargs))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"peer process: {value}")
        return Result(*value)

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=60)


def _peer_main(conn: Any, path: str, n: int, n_threads: int, flash_attn: bool) -> None:
    llm = peer_llama(path, n_threads=n_threads, flash_attn=flash_attn)
    loops = {"bare": BareLoop(path, n=n, n_threads=n_threads, flash_attn=flash_attn)}

    def bare_fa_off(text: str, **kwargs: Any) -> Result:
        if "off" not in loops:
            loops["off"] = BareLoop(path, n=n, n_threads=n_threads, flash_attn=False)
        return loops["off"].run(text, **kwargs)

    handlers = {"peer": lambda *a, **k: measure_peer(llm, *a, **k), "bare": loops["bare"].run,
                "bare_fa_off": bare_fa_off}
    while (msg := conn.recv()) is not None:
        what, args, kwargs = msg
        try:
            result = handlers[what](*args, **kwargs)
            conn.send((True, (result.seconds, result.tokens)))
        except Exception as exc:  # report it to the parent, keep serving
            conn.send((False, repr(exc)))
    for loop in loops.values():
        loop.close()


CppRun = Callable[[int], Result | None]  # llama-batched-bench at a batch size, as a Result (None: it failed)


def cpp_runner(args: argparse.Namespace, path: str, backend: LlamaBackend) -> CppRun | None:
    """llama-batched-bench with the engine's settings, found or built; None (saying why) when it is not there."""
    if not args.cpp:
        return None
    binary = cpp_bench.find()
    why = ""
    if binary is None and args.build_cpp:
        print("building llama-batched-bench from the llama-cpp-python sdist (once; minutes)...", flush=True)
        binary, why = cpp_bench.build(cpp_bench.CACHE / "build.log")
    if binary is None:
        print(f"(c) vs C++ batched-bench: n/a ({why or 'not found; pass --build-cpp or set SFDSL_BATCHED_BENCH'})")
        return None
    found = binary
    prompt_tokens = len(backend.tokenize_prompt(story_prompt(TOPICS[0]))[1])

    def run(batch: int) -> Result | None:
        tps, why = cpp_bench.run(found, path, prompt_tokens=prompt_tokens, gen_tokens=args.max_tokens, batch=batch,
                                 threads=args.threads, flash_attn=args.flash_attn,
                                 kv_type=backend.engine.model.kv_type, extra_buffers=not cpu_has_amx())
        if tps is None:
            print(f"C++ batched-bench at B={batch}: n/a ({why})", flush=True)
            return None
        tokens = batch * args.max_tokens
        return Result(tokens / tps, tokens)

    return run


async def one_round(args: argparse.Namespace, backend: LlamaBackend, peers: PeerProcess,
                    cpp: CppRun | None) -> dict[str, Result]:
    """Every workload once; the C++ figures are taken beside (c) and (f), so drift hits both alike."""
    prompt = story_prompt(TOPICS[0])
    text = backend.render(prompt)
    n, mt, seed = args.n, args.max_tokens, args.seed
    pool = BackendPool(backend=backend)
    out = {
        "a_single": await measure_vote(backend_sampler(backend, prompt, n=1, max_tokens=mt, seed=seed)),
        "b_peer_sequential": peers.call("peer", text, n=n, max_tokens=mt, seed=seed),
        "c_sfdsl_vote": await measure_vote(recipe_sampler(pool, text, n=n, max_tokens=mt, seed=seed)),
        "d_bare_batched": peers.call("bare", text, max_tokens=mt, seed=seed),
    }
    narrow = cpp(n) if cpp else None
    requests = [
        recipe_sampler(pool, backend.render(story_prompt(TOPICS[i % len(TOPICS)])), n=n, max_tokens=mt,
                       seed=seed + 100 * i)
        for i in range(args.concurrent)
    ]
    out["e_requests_sequential"] = await measure_concurrent(requests, together=False)
    out["f_requests_concurrent"] = await measure_concurrent(requests, together=True)
    wide = cpp(n * args.concurrent) if cpp and narrow else None
    if narrow and wide:
        out["g_cpp_batched_bench"], out["h_cpp_batched_bench_wide"] = narrow, wide
    return out


def report(rounds: list[dict[str, Result]], args: argparse.Namespace) -> None:
    med = {k: Result(statistics.median(r[k].seconds for r in rounds), rounds[0][k].tokens) for k in rounds[0]}
    tps = {k: statistics.median(r[k].tps for r in rounds) for k in rounds[0]}
    print(f"\nmedian of {len(rounds)} round(s); n={args.n}, max_tokens={args.max_tokens}, threads={args.threads}, "
          f"flash_attn={args.flash_attn}")
    print(f"{'workload':26s} {'seconds':>8s} {'tokens':>7s} {'tok/s':>8s}")
    for k in med:
        print(f"{k:26s} {med[k].seconds:8.2f} {med[k].tokens:7d} {tps[k]:8.1f}")
    print(f"\n(c) vs (b) throughput speed-up : {tps['c_sfdsl_vote'] / tps['b_peer_sequential']:.2f}x  (target >= 1.8)")
    print(f"(c) vs (d) sfdsl / bare tok/s  : {tps['c_sfdsl_vote'] / tps['d_bare_batched']:.2f}    (target >= 0.90)")
    print(f"(b)/(c) wall time              : {med['b_peer_sequential'].seconds / med['c_sfdsl_vote'].seconds:.2f}x")
    print(f"cross-request batching (f vs e): {tps['f_requests_concurrent'] / tps['e_requests_sequential']:.2f}x "
          f"({args.concurrent} requests x {args.n} samples)")
    if all("g_cpp_batched_bench" in r for r in rounds):
        ratios = [r["c_sfdsl_vote"].tps / r["g_cpp_batched_bench"].tps for r in rounds]
        ceilings = [r["h_cpp_batched_bench_wide"].tps / r["g_cpp_batched_bench"].tps for r in rounds]
        cross = [r["f_requests_concurrent"].tps / r["e_requests_sequential"].tps for r in rounds]
        print(f"(c) vs C++ batched-bench: {statistics.median(ratios):.2f} [{', '.join(f'{x:.2f}' for x in ratios)}]  "
              f"(C++ S_TG at B={args.n}, same prompt, taken right after (c) in each round; target >= 0.95)")
        print(f"cross-request ceiling, C++ batched-bench B={args.n * args.concurrent} vs B={args.n}: "
              f"{statistics.median(ceilings):.2f}x [{', '.join(f'{x:.2f}' for x in ceilings)}] "
              f"(sfdsl f vs e: {statistics.median(cross):.2f}x [{', '.join(f'{x:.2f}' for x in cross)}])")


async def main(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    path = str(resolve_model_path(args.model))
    width = max(args.n, args.n * args.concurrent)
    backend = LlamaBackend.from_params(
        {"path": path, "n_seq_max": width, "n_threads": args.threads, "flash_attn": args.flash_attn}
    )
    peers = PeerProcess(path, n=args.n, n_threads=args.threads, flash_attn=args.flash_attn)
    try:
        if args.warmup:  # page the weights in and let every path allocate its buffers
            await backend_sampler(backend, story_prompt(TOPICS[0]), n=2, max_tokens=4, seed=0)()
            peers.call("peer", "Hello", n=1, max_tokens=4, seed=0)
            peers.call("bare", "Hello", max_tokens=4, seed=0)
        cpp = cpp_runner(args, path, backend)
        rounds = []
        for i in range(args.repeat):
            rounds.append(await one_round(args, backend, peers, cpp))
            print(f"round {i + 1}: " + ", ".join(f"{k[0]}={v.tps:.1f}" for k, v in rounds[-1].items()), flush=True)
        report(rounds, args)
        await extras(args, backend, peers)
    finally:
        peers.close()
        await backend.aclose()


async def extras(args: argparse.Namespace, backend: LlamaBackend, peers: PeerProcess) -> None:
    """The one-shot lines: fairness, prefix cache, flash attention."""
    path = str(backend.path)
    if args.fairness:
        alone, together = await engine_scenarios.fairness(backend, long_tokens=args.long_prompt, max_tokens=40)
        print(f"fairness, 3 small requests beside a {args.long_prompt}-token prompt: {together:.2f} s vs "
              f"{alone:.2f} s alone ({together / alone:.2f}x, target <= 2)", flush=True)
    if args.prefix_cache:
        runs = await engine_scenarios.prefix_cache(path, threads=args.threads, rounds=4, max_tokens=args.max_tokens)
        cached, plain = runs[16].cost, runs[0].cost
        decoded = cached.prompt_tokens - cached.cached_prompt_tokens
        same = [s.output for s in runs[16].steps] == [s.output for s in runs[0].steps]
        print(f"prefix cache, self_refine {runs[16].outputs['rounds']} rounds: prompt tokens decoded {decoded} "
              f"vs {plain.prompt_tokens} without "
              f"(ratio {decoded / max(plain.prompt_tokens, 1):.2f}), wall {cached.wall_s / plain.wall_s:.2f}x; "
              f"same outputs: {same}", flush=True)
    if args.fa_compare:
        text = backend.render(story_prompt(TOPICS[0]))
        on_r = peers.call("bare", text, max_tokens=args.max_tokens, seed=args.seed)
        off_r = peers.call("bare_fa_off", text, max_tokens=args.max_tokens, seed=args.seed)
        print(f"flash attention, bare decode n={args.n}, bf16 KV: on {on_r.tps:.1f} tok/s, off {off_r.tps:.1f} tok/s "
              f"(off/on {off_r.tps / on_r.tps:.2f})", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="GGUF path or alias (default: embedded SmolLM2-135M)")
    parser.add_argument("--n", type=int, default=8, help="samples per vote")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrent", type=int, default=4, help="requests in scenario 2")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--flash-attn", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fairness", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--long-prompt", type=int, default=1700, help="tokens of the long prompt (fairness)")
    parser.add_argument("--prefix-cache", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fa-compare", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--cpp", action=argparse.BooleanOptionalAction, default=True, help="compare with C++")
    parser.add_argument("--build-cpp", action=argparse.BooleanOptionalAction, default=True,
                        help="build llama-batched-bench when it is not found")
    parser.add_argument("--quick", action="store_true", help="short run: --max-tokens 32 --long-prompt 600")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_tokens, args.long_prompt = 32, 600
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
