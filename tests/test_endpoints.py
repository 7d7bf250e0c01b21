"""The OpenAI backend over several endpoints: routing rules, then real loopback servers killed and restarted."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sfdsl.cli import main
from sfdsl.errors import BackendError, InputError
from sfdsl.log import event_of
from sfdsl.runtime.backends.base import GenerateRequest, Prompt
from sfdsl.runtime.backends.endpoints import EndpointRouter, parse_base_urls
from sfdsl.runtime.backends.openai_http import OpenAIBackend

A, B, C = "http://a:1/v1", "http://b:1/v1", "http://c:1/v1"


def _events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [e for e in map(event_of, caplog.records) if e is not None]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_parse_base_urls() -> None:
    assert parse_base_urls("http://h:8000/v1/") == ["http://h:8000/v1"]
    assert parse_base_urls(f" {A}, {B} ,") == [A, B]
    assert parse_base_urls([A, B]) == [A, B]
    for bad, message in [("", "at least one"), ("h:8000/v1", "must start with http"), ([A, A], "twice")]:
        with pytest.raises(InputError, match=message):
            parse_base_urls(bad)


def test_pick_prefers_least_loaded_then_least_used() -> None:
    router = EndpointRouter([A, B, C])
    a, b, c = router.endpoints
    a.in_flight, b.in_flight, c.in_flight = 2, 1, 1
    b.sent, c.sent = 5, 3
    assert router.pick() is c
    assert router.pick(exclude=[c]) is b


def test_down_endpoint_rests_then_one_request_probes_it() -> None:
    clock = Clock()
    router = EndpointRouter([A, B], cooldown=2.0, max_cooldown=5.0, clock=clock)
    a, b = router.endpoints
    router.mark_down(a, ConnectionError("refused"))
    a.in_flight = b.in_flight = 0
    b.in_flight = 9  # busier, but the only healthy one
    assert router.pick() is b
    clock.now += 2.0
    assert router.pick() is a  # rested: probed
    a.probing = True
    assert router.pick() is b  # one probe at a time
    a.probing = False
    router.mark_down(a, ConnectionError("refused again"))  # the probe failed: rest doubles
    assert a.down_until == clock.now + 4.0
    router.mark_down(a, ConnectionError("and again"))
    assert a.down_until == clock.now + 5.0  # capped
    router.mark_up(a)
    assert a.up and router.pick() is a


def test_all_down_tries_the_first_to_recover() -> None:
    clock = Clock()
    router = EndpointRouter([A, B], cooldown=1.0, clock=clock)
    a, b = router.endpoints
    router.mark_down(b, ConnectionError())
    clock.now += 0.5
    router.mark_down(a, ConnectionError())
    assert router.pick() is b and router.pick(exclude=[b]) is a and router.pick(exclude=[a, b]) is None


def test_post_fails_over_on_connection_errors_but_not_on_read_timeouts(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a":
            raise httpx.ConnectError("refused", request=request)
        if request.url.host == "c":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"ok": True})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            router = EndpointRouter([A, B])
            with caplog.at_level(logging.INFO, logger="sfdsl"):
                response = await router.post(client, "/completions", json={})
            assert response.json() == {"ok": True} and str(response.url) == B + "/completions"
            assert [e["event"] for e in _events(caplog)] == ["endpoint_marked_down", "request_failed_over"]
            assert not router.endpoints[0].up and router.endpoints[1].up
            with pytest.raises(httpx.ConnectError):  # nothing reachable: the caller's retry loop backs off
                await EndpointRouter([A]).post(client, "/completions", json={})
            slow = EndpointRouter([C, B])
            with pytest.raises(httpx.ReadTimeout):
                await slow.post(client, "/completions", json={})
            assert slow.endpoints[0].up  # reachable, just slow: not marked down

    asyncio.run(go())
    assert seen == ["a", "b", "a", "c"]


# -- real loopback servers in their own processes, so killing one is a real crash ------------------

SERVER = textwrap.dedent(
    """
    import logging, sys, time
    import structlog
    from sfdsl.runtime.backends.scripted import ScriptedBackend

    sys.path.insert(0, sys.argv[3])  # tests/
    from openai_fake import OpenAIServer

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))  # stdout is a pipe
    name, port = sys.argv[1], int(sys.argv[2])
    backend = ScriptedBackend(lambda prompt, i: f"The answer is 4. ({name})", latency=0.05)
    server = OpenAIServer(backend, port=port).start()
    print("serving", server.base_url, flush=True)
    while True:
        time.sleep(1)
    """
)


class Fleet:
    """Loopback OpenAI servers, each a subprocess that can be SIGKILLed and restarted on its port."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "server.py"
        self.script.write_text(SERVER)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.urls: dict[str, str] = {}

    def start(self, name: str) -> str:
        port = self.urls[name].rsplit(":", 1)[1].split("/")[0] if name in self.urls else "0"
        argv = [sys.executable, str(self.script), name, port, str(Path(__file__).parent)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = ""
        while not line.startswith("serving "):  # skip the server's own log lines
            line = proc.stdout.readline()
            assert line, f"server {name} exited before serving"
        self.procs[name], self.urls[name] = proc, line.split()[1]
        return self.urls[name]

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    servers = Fleet(tmp_path)
    try:
        yield servers
    finally:
        servers.close()


def _request(i: int) -> GenerateRequest:
    return GenerateRequest(prompt=Prompt(text=f"question {i}"), max_tokens=8, temperature=0.0)


def test_two_servers_one_killed_mid_run_then_restarted(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    urls = [fleet.start("one"), fleet.start("two")]
    n = 80

    async def go() -> tuple[list[str], list[str]]:
        backend = OpenAIBackend(base_url=urls, max_concurrency=3, backoff=0.01, endpoint_cooldown=0.3)
        finished: list[str] = []

        async def one(i: int) -> None:
            (completion,) = await backend.generate(_request(i))
            finished.append(completion.text)
            if len(finished) == 20:
                fleet.kill("two")  # with requests to it in flight

        try:
            with caplog.at_level(logging.INFO, logger="sfdsl"):
                await asyncio.gather(*(one(i) for i in range(n)))
                await asyncio.to_thread(fleet.start, "two")  # back on its port
                await asyncio.sleep(0.4)  # past its cool-down
                after = [(await backend.generate(_request(i)))[0].text for i in range(6)]
        finally:
            await backend.aclose()
        return finished, after

    finished, after = asyncio.run(go())
    events = _events(caplog)
    by_server = Counter(text.rsplit("(", 1)[1].rstrip(")") for text in finished)
    assert len(finished) == n and set(by_server) == {"one", "two"}  # all answered, both were used
    assert by_server["one"] > n / 2  # it took over from the killed one
    downs = [e for e in events if e["event"] == "endpoint_marked_down"]
    assert downs and {e["url"] for e in downs} == {urls[1]}
    assert any(e["event"] == "endpoint_recovered" and e["url"] == urls[1] for e in events)
    assert any(text.endswith("(two)") for text in after)  # re-probed and back in the rotation


def test_every_endpoint_down_is_a_backend_error(fleet: Fleet) -> None:
    urls = [fleet.start("one"), fleet.start("two")]
    fleet.kill("one")
    fleet.kill("two")

    async def go() -> None:
        backend = OpenAIBackend(base_url=",".join(urls), max_retries=1, backoff=0.01)
        try:
            await backend.generate(_request(0))
        finally:
            await backend.aclose()

    with pytest.raises(BackendError, match="cannot reach"):
        asyncio.run(go())


def test_recipe_and_cli_accept_several_base_urls(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [fleet.start("one"), fleet.start("two")]
    recipe = tmp_path / "fleet.sf"
    recipe.write_text(
        textwrap.dedent(
            f"""
            recipe ask(question: str) -> (answer, said) {{
              model fleet = openai(base_url: {json.dumps(urls)}, max_concurrency: 2)
              prompt p = "{{{{ question }}}}"
              said = generate p (max_tokens: 16) using fleet
              answer = extract regex /answer is (\\d+)/ from said
              return answer: answer, said: said
            }}
            """
        )
    )
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "4"}) + "\n" for i in range(12)))
    common = ["eval", str(recipe), "--data", str(data), "-k", "6", "--no-cache"]
    assert main([*common, "--out", str(tmp_path / "declared")]) == 0
    assert main([*common, "--out", str(tmp_path / "flag"), "--backend", "openai:" + ",".join(urls)]) == 0
    capsys.readouterr()
    for out in ("declared", "flag"):
        summary = json.loads((tmp_path / out / "metrics.json").read_text())["recipes"]["ask"]["summary"]
        assert summary["accuracy"] == 1.0, out
        with sqlite3.connect(tmp_path / out / "results.sqlite") as con:
            said = " ".join(json.loads(row[0])["said"] for row in con.execute("SELECT outputs FROM results"))
        assert "(one)" in said and "(two)" in said, out  # requests were spread over both servers
