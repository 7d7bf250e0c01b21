"""Request validation of the serve protocol: a bad field is a 400 whose ``param`` names the field the client sent."""

from __future__ import annotations

from typing import Any

import pytest

from sfdsl.serve.protocol import ChatRequest, HTTPError, parse_request

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def refusal(**fields: Any) -> HTTPError:
    with pytest.raises(HTTPError) as caught:
        parse_request(ChatRequest, {"model": "chat", "messages": MESSAGES, **fields})
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(("fields", "param"), [
    ({"temperature": "hot"}, "temperature"),  # a float-or-int union: not 'temperature.float'
    ({"presence_penalty": "x"}, "presence_penalty"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),  # not 'messages.0.content.str'
    ({"messages": [{"role": "user", "content": "a"}, {"role": "bogus", "content": "b"}]}, "messages.1.role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
     "messages.0.content"),
    ({"seed": "x"}, "seed"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_a_bad_field_is_named_as_the_client_sent_it(fields: dict[str, Any], param: str) -> None:
    error = refusal(**fields)
    assert error.code == "invalid_field" and error.param == param
    assert f"'{param}'" in error.message


def test_tool_choice_with_tools_and_a_json_schema_format_are_accepted() -> None:
    request = parse_request(ChatRequest, {"model": "m", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required",
                                          "response_format": {"type": "json_schema", "json_schema": {
                                              "name": "x", "schema": {"type": "object"}}}})
    assert isinstance(request, ChatRequest)
    assert request.request_fields()["response_format"] == {"type": "object"}
    assert parse_request(ChatRequest, {"model": "m", "messages": MESSAGES, "tool_choice": "none"}).tool_choice == "none"


def test_a_non_text_content_part_is_refused_by_its_type() -> None:
    error = refusal(messages=[{"role": "user", "content": [{"type": "text", "text": "see"},
                                                           {"type": "image_url", "image_url": {"url": "u"}}]}])
    assert error.message == "invalid field 'messages.0.content': only text content parts are supported, not 'image_url'"
