"""Several OpenAI-compatible endpoints behind one backend: least-loaded routing, failover and re-probing.

A fleet (vLLM, SGLang or llama-server replicas serving one model) is given as
several base URLs. Each request goes to the healthy endpoint with the fewest
requests in flight. A connection error (refused, reset, connect timeout, the
server dropping the connection) marks that endpoint down and the request is
sent to the next one at once. A down endpoint is probed again after a
cool-down (doubling on each failed probe, up to ``max_cooldown``): one
request at a time goes to it, and the first that succeeds marks it up.

Timeouts while a request is being answered are not failovers: the server is
reachable and may still be working on it, so they reach the caller.

Example:
    >>> router = EndpointRouter(parse_base_urls("http://a:8000/v1,http://b:8000/v1"))
    >>> [e.url for e in router.endpoints]
    ['http://a:8000/v1', 'http://b:8000/v1']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sfdsl.errors import InputError
from sfdsl.log import get_logger

log = get_logger(__name__)

#: Errors that do not mean the endpoint is unreachable: it accepted the request and is slow to answer.
_NOT_FAILOVER = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)


def parse_base_urls(value: str | Sequence[str]) -> list[str]:
    """One or more base URLs from ``"URL"``, ``"URL1,URL2"`` or a list of URLs.

    Raises:
        InputError: If there is none, one is not http(s), or one repeats.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [str(p).strip().rstrip("/") for p in parts if str(p).strip()]
    if not urls:
        raise InputError("base_url needs at least one URL, e.g. http://127.0.0.1:8080/v1")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"base_url must start with http:// or https://, not {url!r}")
    if len(set(urls)) != len(urls):
        raise InputError(f"base_url lists an endpoint twice: {', '.join(urls)}")
    return urls


@dataclass(eq=False)
class Endpoint:
    """One server of the fleet and what the router knows about it."""

    url: str
    in_flight: int = 0
    sent: int = 0
    failures: int = 0  # consecutive connection failures; 0 means up
    down_until: float = 0.0
    probing: bool = False

    @property
    def up(self) -> bool:
        """Whether the last request to it connected."""
        return self.failures == 0


class EndpointRouter:
    """Routes requests over endpoints: least-loaded healthy first, failing over on connection errors.

    Args:
        urls: Base URLs (see :func:`parse_base_urls`).
        cooldown: Seconds a failed endpoint rests before it is probed again.
        max_cooldown: Cap of the cool-down, which doubles on each failed probe.
        clock: Monotonic clock (for tests).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        cooldown: float = 5.0,
        max_cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise InputError("an endpoint router needs at least one URL")
        if cooldown < 0 or max_cooldown < cooldown:
            raise InputError("endpoint cooldown must be >= 0 and no more than max_cooldown")
        self.endpoints = [Endpoint(url) for url in urls]
        self._cooldown, self._max_cooldown, self._clock = cooldown, max_cooldown, clock

    def __len__(self) -> int:
        return len(self.endpoints)

    @property
    def label(self) -> str:
        """The URLs, comma-separated (the one URL when there is one)."""
        return ",".join(e.url for e in self.endpoints)

    def pick(self, exclude: Sequence[Endpoint] = ()) -> Endpoint | None:
        """The endpoint for the next request, or None when every endpoint is in ``exclude``.

        Healthy endpoints and rested ones not already being probed come first,
        least requests in flight (then fewest sent) first. When every endpoint
        is down and resting, the one whose rest ends first is tried anyway:
        the caller has nowhere better to go.
        """
        now = self._clock()
        candidates = [e for e in self.endpoints if e not in exclude]
        ready = [e for e in candidates if e.up or (e.down_until <= now and not e.probing)]
        if ready:
            return min(ready, key=lambda e: (e.in_flight, e.sent))
        return min(candidates, key=lambda e: e.down_until) if candidates else None

    def mark_down(self, endpoint: Endpoint, error: BaseException) -> None:
        """Rest an endpoint after a connection error; each consecutive failure doubles its rest."""
        endpoint.failures += 1
        rest = min(self._cooldown * 2 ** (endpoint.failures - 1), self._max_cooldown)
        endpoint.down_until = self._clock() + rest
        log.warning("endpoint_marked_down", url=endpoint.url, error=repr(error), cooldown_s=rest)

    def mark_up(self, endpoint: Endpoint) -> None:
        """Record that a request to the endpoint connected."""
        if endpoint.failures:
            log.info("endpoint_recovered", url=endpoint.url, after_failures=endpoint.failures)
        endpoint.failures = 0
        endpoint.down_until = 0.0

    async def post(self, client: httpx.AsyncClient, path: str, *, json: Any) -> httpx.Response:
        """POST ``path`` to the least-loaded healthy endpoint, failing over to the others.

        Raises:
            httpx.TransportError: The last endpoint's error when none could be reached
                (the caller may back off and call again), or a timeout while being answered.
        """
        tried: list[Endpoint] = []
        while True:
            endpoint = self.pick(tried)
            if endpoint is None:  # pragma: no cover - the loop re-raises after the last endpoint
                raise AssertionError("no endpoint left to try")
            tried.append(endpoint)
            probe = not endpoint.up
            endpoint.probing = endpoint.probing or probe
            endpoint.in_flight += 1
            endpoint.sent += 1
            try:
                response = await client.post(endpoint.url + path, json=json)
            except _NOT_FAILOVER:
                raise
            except httpx.TransportError as exc:
                self.mark_down(endpoint, exc)
                if len(tried) == len(self.endpoints):
                    raise
                log.info("request_failed_over", url=endpoint.url, path=path, tried=len(tried))
                continue
            finally:
                endpoint.in_flight -= 1
                if probe:
                    endpoint.probing = False
            self.mark_up(endpoint)
            return response


__all__ = ["Endpoint", "EndpointRouter", "parse_base_urls"]
