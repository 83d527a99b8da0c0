"""The production server's checks in the master, before it forks."""

from __future__ import annotations

import socket

import pytest
from tests.support.net import free_port

from tabserve.errors import UsageError
from tabserve.serving import server


def test_a_taken_port_fails_before_forking_and_says_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(UsageError, match="--port"):
            server._check_port("127.0.0.1", port)


def test_a_free_port_passes_the_check() -> None:
    server._check_port("127.0.0.1", free_port())
