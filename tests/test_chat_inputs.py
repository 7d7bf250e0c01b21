"""Chat messages to recipe inputs: the convention shared by serve, MCP and LangChain."""

from __future__ import annotations

import pytest

from sfdsl.chat_inputs import ChatMessage, inputs_from_chat, last_user_text, text_input
from sfdsl.errors import InputError


def test_question_input_wins_over_first_str() -> None:
    assert text_input([("context", "str"), ("question", "str")]) == "question"


def test_first_str_input_when_no_question() -> None:
    assert text_input([("n", "int"), ("problem", "str"), ("other", "str")]) == "problem"


def test_no_str_input_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no str input"):
        text_input([("n", "int")], recipe="count")


def test_last_user_message_is_taken() -> None:
    messages = [ChatMessage(role="user", content="first"), ChatMessage(role="assistant", content="a"),
                ChatMessage(role="user", content="second"), ChatMessage(role="assistant", content="b")]
    assert last_user_text(messages) == "second"


@pytest.mark.parametrize("messages", [[], [ChatMessage(role="system", content="x")]])
def test_missing_user_message_is_an_input_error(messages: list[ChatMessage]) -> None:
    with pytest.raises(InputError):
        last_user_text(messages)


def test_request_fields_map_only_to_declared_inputs_and_extra_wins() -> None:
    params = [("question", "str"), ("n", "int"), ("temperature", "float")]
    got = inputs_from_chat(params, [ChatMessage(role="user", content="q?")],
                           request_fields={"n": 4, "seed": 9, "temperature": None}, extra={"n": 6})
    assert got == {"question": "q?", "n": 6}
