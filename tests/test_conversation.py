"""Conversations in chat prompts: the splice line, the golden rendered prompt, fields read in templates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.errors import CompileError, StepError
from sfdsl.runtime.conversation import ConversationError, turns_of

GOLDEN = Path(__file__).parent / "golden" / "conversation_prompt.txt"
CONVERSATION = [
    {"role": "system", "content": "You are a calculator assistant."},
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "add", "content": "5"},
    {"role": "user", "content": "And the weather in Paris?"},
]
SOURCE = '''
recipe r(messages: conversation) -> answer {
  prompt p = chat {
    system: "Answer in one word."
    conversation: messages
    user: "The last turn was by {{ messages[-1].role }}: {{ messages[-1].content }} ({{ messages | length }} turns)"
  }
  x = generate p
  return x
}
'''


def test_a_spliced_conversation_reaches_the_prompt_intact() -> None:
    backend = ScriptedBackend(["Sunny"])
    result = sfdsl.compile(SOURCE).recipe().run({"messages": CONVERSATION}, backend=backend)
    assert result.answer == "Sunny"
    text = backend.requests[0].prompt.canonical()
    if os.environ.get("SFDSL_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == GOLDEN.read_text(encoding="utf-8")


def test_templates_read_conversation_fields_like_expressions() -> None:
    source = '''
recipe r(messages: conversation) -> answer {
  prompt p = "{% for m in messages %}{{ m.role }}={{ m }};{% endfor %}{{ messages[2].tool_calls[0].function.name }}"
  x = generate p
  return answer: messages[1].content + "|" + x.text
}
'''
    backend = ScriptedBackend(["ok"])
    result = sfdsl.compile(source).recipe().run({"messages": CONVERSATION}, backend=backend)
    assert result.answer == "What is 2 plus 3?|ok"
    prompt = backend.requests[0].prompt.canonical()
    assert prompt.startswith("system=You are a calculator assistant.;user=What is 2 plus 3?;assistant=;tool=5;")
    assert prompt.endswith("add")


@pytest.mark.parametrize(("splice", "code"), [
    ("conversation: question", "SF316"),   # not a conversation
    ('conversation: "text"', "SF316"),     # the splice line takes a value, not text
    ("user: question", "SF316"),           # a role with a value instead of a string
])
def test_a_bad_splice_is_a_located_compile_error(splice: str, code: str) -> None:
    source = f'recipe r(question: str) {{\n  prompt p = chat {{\n    {splice}\n  }}\n  x = generate p\n  return x\n}}'
    with pytest.raises(CompileError) as info:
        sfdsl.compile(source, file="bad.sf")
    assert [d.code for d in info.value.diagnostics] == [code]
    assert info.value.diagnostics[0].span.line == 3


def test_tool_call_arguments_that_are_not_json_fail_the_step_with_its_location() -> None:
    broken = [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]
    with pytest.raises(ConversationError, match="not JSON"):
        turns_of(broken)
    with pytest.raises(StepError) as info:
        sfdsl.compile(SOURCE, file="r.sf").recipe().run({"messages": broken}, backend=ScriptedBackend(["x"]))
    assert info.value.location is not None and info.value.location.startswith("r.sf:5")


def test_developer_turns_are_system_turns() -> None:
    [turn] = turns_of([{"role": "developer", "content": "Be terse."}])
    assert turn.role == "system" and turn.content == "Be terse."


#: SmolLM2-135M-Instruct's chat template, as its GGUF stores it (it knows no tool calls).
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
           "<|im_end|>\n' }}{% endif %}"
           "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_the_default_models_template_renders_tool_turns_as_text() -> None:
    from sfdsl.runtime.chat_template import ChatTemplate

    text = ChatTemplate(SMOLLM2).render(turns_of(CONVERSATION))
    golden = GOLDEN.with_name("conversation_smollm2.txt")
    if os.environ.get("SFDSL_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert '<|im_start|>assistant\n{"name": "add", "arguments": {"a": 2, "b": 3}}<|im_end|>' in text
    assert "<|im_start|>user\nTool result (add, call_1): 5<|im_end|>" in text
