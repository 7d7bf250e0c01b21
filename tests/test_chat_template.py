"""Chat prompts rendered with the model's own template: generation prompt, prefill, ChatML fallback, errors."""

from __future__ import annotations

import pytest

from sfdsl.errors import BackendError
from sfdsl.runtime.backends.base import Message
from sfdsl.runtime.chat_template import CHATML, ChatTemplate

LLAMA3ISH = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chatml_is_the_fallback_and_ends_with_a_generation_prompt() -> None:
    template = ChatTemplate(None)
    assert template.source == CHATML
    text = template.render([Message(role="system", content="Be brief."), Message(role="user", content="Hi")])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_a_final_assistant_message_is_a_prefill_continued_without_end_of_turn() -> None:
    template = ChatTemplate(None)
    text = template.render([Message(role="user", content="2+2?"), Message(role="assistant", content="The answer is")])
    assert text.endswith("<|im_start|>assistant\nThe answer is")
    assert text.count("<|im_end|>") == 1


def test_a_lone_prefill_renders_after_the_bare_assistant_header() -> None:
    assert ChatTemplate(None).render([Message(role="assistant", content="Sure")]) == "<|im_start|>assistant\nSure"


def test_the_models_template_sees_its_special_tokens() -> None:
    template = ChatTemplate(LLAMA3ISH, bos_token="<s>", eos_token="</s>")
    assert template.render([Message(role="user", content="Hi")]) == "<s><|user|>Hi</s><|assistant|>"


def test_template_errors_are_backend_errors() -> None:
    with pytest.raises(BackendError, match="does not compile"):
        ChatTemplate("{% for %}")
    failing = ChatTemplate("{{ raise_exception('no system role') }}")
    with pytest.raises(BackendError, match="failed to render: no system role"):
        failing.render([Message(role="system", content="x")])
    with pytest.raises(BackendError, match="at least one message"):
        ChatTemplate(None).render([])


def test_the_template_runs_in_a_sandbox() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(BackendError, match="failed to render"):
        template.render([Message(role="user", content="x")])


def _tool_turns() -> list[Message]:
    from sfdsl.agent_values import ToolCall

    return [Message(role="user", content="2+3?"),
            Message(role="assistant", content="", tool_calls=(ToolCall(id="c1", name="add", arguments={"a": 2}),)),
            Message(role="tool", content="5", name="add", tool_call_id="c1")]


def test_tool_turns_reach_a_template_that_knows_tool_calls() -> None:
    source = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}"
              "{% for c in m.get('tool_calls') or [] %}<call {{ c['function']['name'] }} "
              "{{ c['function']['arguments']['a'] }}>{% endfor %}"
              "{% if m['role'] == 'tool' %}<for {{ m['tool_call_id'] }}>{% endif %}{% endfor %}")
    text = ChatTemplate(source).render(_tool_turns())
    assert text == "[user]2+3?[assistant]<call add 2>[tool]5<for c1>"


def test_tool_turns_are_written_as_text_where_the_template_cannot_show_them() -> None:
    text = ChatTemplate(LLAMA3ISH, eos_token="<e>").render(_tool_turns())
    assert '<|assistant|>{"name": "add", "arguments": {"a": 2}}<e>' in text
    assert "<|user|>Tool result (add, c1): 5<e>" in text
