"""Running the HTTP server with the graceful shutdown of foundation §14.6."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from caracal_api.runtime import Runtime

log = logging.getLogger("caracal_api.server")


class DrainingServer(uvicorn.Server):
    """First SIGTERM/SIGINT: `/ready` answers 503 draining, serving continues for the
    drain delay, then the listener closes and in-flight work finishes within the grace.
    A second signal ends the delay at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        runtime: Runtime,
        on_signal: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.on_signal = on_signal
        self._signals = 0
        self._delay_over = asyncio.Event()
        self.forced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_signal is not None:
            self.on_signal(sig)
        self._signals += 1
        if self._signals == 1:
            self.runtime.draining = True
            log.info("draining", extra={"delay_ms": self.runtime.settings.shutdown_drain_delay_ms})
            asyncio.get_event_loop().create_task(self._drain_then_exit())
        elif self._signals == 2:
            self._delay_over.set()
        else:
            self.force_exit = True
            self.forced = True

    async def _wait_tasks_to_complete(self) -> None:
        # uvicorn runs this under `wait_for(timeout_graceful_shutdown)`; being cancelled
        # means requests were still running when the grace ran out (exit code 1, §14.6).
        try:
            await super()._wait_tasks_to_complete()
        except asyncio.CancelledError:
            self.forced = True
            raise

    async def _drain_then_exit(self) -> None:
        delay = self.runtime.settings.shutdown_drain_delay_ms / 1000
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._delay_over.wait(), delay)
        self.should_exit = True


def build_config(app: object, host: str, port: int, grace_ms: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, grace_ms // 1000),
        proxy_headers=False,
    )


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket of one API process.

    With several API processes each binds its own socket with SO_REUSEPORT: the kernel then
    spreads new connections evenly over the processes. (One shared socket does not: the
    process that wakes first takes most connections of a small client pool.) Only multi-process
    servers set it, so a second server started on a taken port still fails to bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every response waited ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class ProcessGroup:
    """Extra API processes (API_PROCESSES > 1), each listening on the parent's port.

    Children run the API only; the parent also runs the workers. Signals are forwarded, so
    SIGTERM drains the whole group.
    """

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, count: int, port: int) -> None:
        for _ in range(count):
            self.children.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [sys.executable, "-m", "caracal_api", "serve", "--api-child-port", str(port)],
                    env=os.environ.copy(),
                )
            )

    def forward(self, sig: int) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(sig)

    async def wait(self, grace: float) -> bool:
        """Wait for the children to exit; True when one had to be killed."""
        forced = False
        loop = asyncio.get_running_loop()
        for child in self.children:
            try:
                await loop.run_in_executor(None, child.wait, grace)
            except subprocess.TimeoutExpired:
                child.kill()
                forced = True
        return forced

    def kill(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
