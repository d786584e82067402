"""uvicorn's HTTP/1.1 protocol (httptools), with the limits a server on the internet needs and
uvicorn does not have:

- the request line and headers are at most `header_bytes_max` bytes: beyond, 431 and the
  connection closes (uvicorn would buffer a 96 MB header and parse it for 20 s);
- a request must arrive whole within `request_timeout_s` of its first byte (and a new
  connection must send one within that time): after it, 408 and close; a client sending a byte
  now and then cannot hold a connection;
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
        self._in_request = False  # a request has begun and not fully arrived
        self._header_bytes = 0
        self._tail = b""  # the last bytes seen, to find a header end split between reads
        self._refused = False
        self._request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.connections_max:
            self._refuse(503, "unavailable", "too many connections", retry_after_s=1)
            return
        self._start_request_timer()  # a connection that never sends anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_request:
            self._in_request = True
            self._start_request_timer()
        if self._in_headers and self._headers_too_long(data):
            self._refuse(431, "headers_too_large", f"headers over {self.header_bytes_max} bytes")
            return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_request_timer()
        self._in_request = False
        self._in_headers, self._header_bytes, self._tail = True, 0, b""
        super().on_message_complete()

    def _headers_too_long(self, data: bytes) -> bool:
        """Whether the headers now pass the limit without having ended within it."""
        seen = self._header_bytes
        self._header_bytes += len(data)
        probe = self._tail + data[: max(0, self.header_bytes_max - seen)]
        self._tail = (self._tail + data)[-(len(HEADER_END) - 1) :]
        return self._header_bytes > self.header_bytes_max and HEADER_END not in probe

    def _start_request_timer(self) -> None:
        self._stop_request_timer()
        self._request_timer = self.loop.call_later(self.request_timeout_s, self._timed_out)

    def _stop_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        if self._in_request and self._in_headers:
            detail = f"the request did not arrive within {self.request_timeout_s:g} s"
            self._refuse(408, "request_timeout", detail)
        else:  # idle, or a body that stalled while the application waits for it
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str, retry_after_s: int = 0) -> None:
        """Answer with a problem, close the connection, and read nothing more from it."""
        self._refused = True
        self._stop_request_timer()
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
