"""Requests held open on purpose: a POST whose body is sent in two halves on a raw socket.

The server counts a request in flight from its headers on; until the second half arrives the
handler waits for the body. That is how the fault and shedding tests hold a known number of
requests in flight in a real server without making any model slow.
"""

from __future__ import annotations

import json
import select
import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Held:
    """A `POST path` with `body`, its headers and first half sent, the rest held back."""

    def __init__(self, port: int, path: str, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.rest = data[len(data) // 2 :]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + data[: len(data) // 2])

    def answered(self) -> bool:
        """Whether the server already wrote something back (e.g. a 503 without reading)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def local_port(self) -> int:
        """This connection's client port (to find which worker holds it)."""
        return int(self.sock.getsockname()[1])

    def finish(self) -> tuple[int, dict[str, str], bytes]:
        """Send the rest of the body; the status, headers and body of the answer."""
        if self.rest:
            self.sock.sendall(self.rest)
        return self.read()

    def read(self) -> tuple[int, dict[str, str], bytes]:
        """Read one whole answer (bounded by the socket timeout)."""
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an answer: {buffer!r}")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the middle of the body")
            body += chunk
        return int(lines[0].split(" ", 2)[1]), headers, body

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def in_flight(url: str, token: str | None = None) -> float:
    """`tabserve_http_requests_in_flight` summed over the workers (the scrape included)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"{url}/metrics", timeout=10, headers=headers).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tabserve_http_requests_in_flight":
                return float(sample.value)
    return 0.0
