"""API_PROCESSES=2: every process accepts connections on the one port, and SIGTERM stops all."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import external_env
from tests.e2e.harness import ServerProcess

CONNECTIONS = 16


@pytest.fixture
def two_process_server(external_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = external_env(external_dsn, API_PROCESSES="2")
    server = ServerProcess(env, tmp_path).start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def api_children_of(pid: int) -> list[int]:
    """Child API processes (the parent also has policy-engine workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in found if b"--api-child-port" in Path(f"/proc/{p}/cmdline").read_bytes()]


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def local_sockets(port: int, state: str) -> set[str]:
    """Inodes of TCP sockets on local `port` in `state` (01 established, 0A listening)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def wait_listeners(port: int, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(local_sockets(port, "0A")) < count:
        assert time.monotonic() < deadline, f"fewer than {count} listeners on {port}"
        time.sleep(0.1)


def get_health(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    return sock.recv(4096)


def test_connections_spread_over_both_processes(two_process_server: ServerProcess) -> None:
    assert two_process_server.process is not None
    parent = two_process_server.process.pid
    [child] = api_children_of(parent)
    wait_listeners(two_process_server.port, 2)
    clients = [
        socket.create_connection(("127.0.0.1", two_process_server.port), timeout=10)
        for _ in range(CONNECTIONS)
    ]
    try:
        for client in clients:
            assert get_health(client).startswith(b"HTTP/1.1 200")
        ends = local_sockets(two_process_server.port, "01")
        owners = Counter(
            pid for pid in (parent, child) for inode in socket_inodes(pid) if inode in ends
        )
    finally:
        for client in clients:
            client.close()
    assert sum(owners.values()) == CONNECTIONS
    # SO_REUSEPORT hashes connections over the two sockets: all 16 on one side has odds 2^-15.
    assert owners[parent] > 0
    assert owners[child] > 0
    assert two_process_server.stop() == 0
    assert (
        not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
    )


def test_a_second_server_cannot_take_the_port(
    two_process_server: ServerProcess, tmp_path: Path
) -> None:
    """Only multi-process servers share a port among themselves; a stray one fails to bind."""
    stray = ServerProcess(
        {**two_process_server.env, "API_PROCESSES": "1"},
        tmp_path / "stray",
        port=two_process_server.port,
    )
    stray.workdir.mkdir()
    stray.start()
    assert stray.process is not None
    code = stray.process.wait(60)
    assert code != 0
    assert "in use" in stray.stderr().lower()
