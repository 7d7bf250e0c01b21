"""Running the app on uvicorn: a deep listen backlog, timeouts for stalled connections, JSON protocol errors.

uvicorn already closes idle keep-alive connections (``timeout_keep_alive``) and
the app times out bodies that stall (``ServeConfig.body_timeout_s``). What is
left is a client that opens a connection and sends part of a request head, or
nothing at all: ``HeadTimeoutH11Protocol`` closes it after ``head_timeout_s``. The same
protocol answers requests h11 cannot parse with an OpenAI-shaped JSON 400 (uvicorn's own
is plain text).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Pending connections the kernel holds before refusing (and resetting) new ones.
BACKLOG = 4096


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head has not arrived within ``head_timeout_s``."""

    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (bad or duplicate Content-Length, bad chunk size, NUL in a header...):
        uvicorn's 400, but with an OpenAI-shaped JSON body instead of plain text, then the connection closes."""
        body = json.dumps({"error": {"message": f"{msg.rstrip('.')}: the request does not follow HTTP/1.1",
                                     "type": "invalid_request_error", "code": "invalid_http_request",
                                     "param": None}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
                                 or b"")
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # a response was already under way: nothing more can be said
            pass
        self.transport.close()

    def _on_head_timeout(self) -> None:
        """Close the connection if it is still waiting for a request head (a request in progress is left alone)."""
        self._head_timer = None
        waiting_for_head = self.conn.their_state == h11.IDLE and (self.cycle is None or self.cycle.response_complete)
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, *, host: str, port: int, sock: socket.socket | None = None,
                   head_timeout_s: float = 10.0, keep_alive_s: int = 5) -> uvicorn.Config:
    """The uvicorn settings `sfrun serve` uses."""
    protocol = type("ServeH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": head_timeout_s})
    return uvicorn.Config(app, host=host, port=port, http=protocol, backlog=BACKLOG, timeout_keep_alive=keep_alive_s,
                          lifespan="on", log_config=None, access_log=False, server_header=False,
                          timeout_graceful_shutdown=5)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port), so the caller knows the port before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock
