"""The port probe the demo and the tests use: a port in TIME_WAIT is free (the demo run again
right after Ctrl-C keeps its --ha-port), a port something listens on is not."""

from __future__ import annotations

import socket

from devtools.harness import free_port


def test_port_in_time_wait_is_free_and_a_listening_one_is_not() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert free_port(port) != port  # listening: another port
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    # The server side closes first, so its end of the connection waits in TIME_WAIT.
    conn.close()
    server.close()
    client.close()
    assert free_port(port) == port
