"""A free local TCP port for a server a test starts (PostgreSQL, MariaDB, the agent's metrics)."""

import socket


def free_port() -> int:
    """A port the kernel just handed out and released; the server binds it right after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
