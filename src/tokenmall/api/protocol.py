"""uvicorn's HTTP/1.1 protocol (httptools), with the limits a server on the internet needs and
uvicorn does not have:

- the request line and headers are at most `header_bytes_max` bytes: beyond, 431 and the
  connection closes (uvicorn would buffer a 96 MB header and parse it for 20 s);
- a request must arrive whole within `request_timeout_s` of its first byte (and a new
  connection must send one within that time; both checked every quarter of that time): after
  it, 408 and close; a client sending a byte now and then cannot hold a connection;
- at most `connections_max` connections are open at once: the next is answered 503 with
  Retry-After and closed, before it costs more.
"""

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tokenmall.api.limits import Limits

PROBLEM_TYPE = "https://tokenmall.dev/problems/"
HEADER_END = b"\r\n\r\n"


def guarded_protocol(limits: Limits) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's `http` setting, holding these limits."""

    class Guarded(GuardedHttpProtocol):
        header_bytes_max = limits.header_bytes_max
        request_timeout_s = limits.request_timeout_s
        connections_max = limits.connections_max

    return Guarded


class GuardedHttpProtocol(HttpToolsProtocol):
    header_bytes_max = Limits.header_bytes_max
    request_timeout_s = Limits.request_timeout_s
    connections_max = Limits.connections_max

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the bytes coming belong to a request's line and headers
        self._header_bytes = 0
        self._tail = b""  # the last bytes seen, to find a header end split between reads
        self._refused = False
        # When the request now arriving must have arrived (the loop's clock), or None while
        # none is arriving. One sweep a fraction of the timeout checks every connection: a
        # timer per request (call_later and cancel) cost more than the rest of this class.
        self._deadline: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.connections_max:
            self._refuse(503, "unavailable", "too many connections", retry_after_s=1)
            return
        self._deadline = self.loop.time() + self.request_timeout_s  # it must send something
        _start_sweeping(self.loop, self.connections, self.request_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None:
            self._deadline = self.loop.time() + self.request_timeout_s
        if self._in_headers and self._headers_too_long(data):
            self._refuse(431, "headers_too_large", f"headers over {self.header_bytes_max} bytes")
            return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline = None
        self._in_headers, self._header_bytes, self._tail = True, 0, b""
        super().on_message_complete()

    def _headers_too_long(self, data: bytes) -> bool:
        """Whether the headers now pass the limit without having ended within it."""
        seen = self._header_bytes
        self._header_bytes += len(data)
        probe = self._tail + data[: max(0, self.header_bytes_max - seen)]
        self._tail = (self._tail + data)[-(len(HEADER_END) - 1) :]
        return self._header_bytes > self.header_bytes_max and HEADER_END not in probe

    def check_deadline(self, now: float) -> None:
        """Called by the sweep: end a request (or a silent connection) that is late."""
        if self._deadline is None or now < self._deadline or self.transport.is_closing():
            return
        self._deadline = None
        if self._in_headers and self._header_bytes:
            detail = f"the request did not arrive within {self.request_timeout_s:g} s"
            self._refuse(408, "request_timeout", detail)
        else:  # silent since it connected, or a body that stalled while the application waits
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str, retry_after_s: int = 0) -> None:
        """Answer with a problem, close the connection, and read nothing more from it."""
        self._refused = True
        self._deadline = None
        body = json.dumps(
            {"type": PROBLEM_TYPE + code, "title": code, "status": status, "code": code}
            | {"detail": detail}
        ).encode()
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
            status, "Service Unavailable"
        )
        head = [
            f"HTTP/1.1 {status} {reason}",
            "content-type: application/problem+json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        if retry_after_s:
            head.append(f"retry-after: {retry_after_s}")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.transport.close()


_sweeping: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}


def _start_sweeping(
    loop: asyncio.AbstractEventLoop, connections: set[Any], timeout_s: float
) -> None:
    """Every timeout_s / 4, check every open connection's deadline (once per event loop): a
    late request is ended at most a quarter of the timeout after its deadline."""
    if loop in _sweeping:
        return
    interval_s = timeout_s / 4

    def sweep() -> None:
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, GuardedHttpProtocol):
                connection.check_deadline(now)
        _sweeping[loop] = loop.call_later(interval_s, sweep)

    _sweeping[loop] = loop.call_later(interval_s, sweep)
