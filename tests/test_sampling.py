"""The numpy row sampler (seeded draws, greedy, top_k/top_p, softmax) and TextStream (UTF-8 pieces cut at stops)."""

from __future__ import annotations

import numpy as np
import pytest

from sfdsl.runtime.sampling import RowSampler, SamplingParams, Scratch, TextStream, draw_index, log_softmax

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
