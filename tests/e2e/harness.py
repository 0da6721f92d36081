"""Start the real `caracal-api serve` process and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Variables of the caller's environment that would change how the server starts.
_SCRUB = (
    "DATABASE_URL",
    "DATABASE_DIRECT_URL",
    "REDIS_URL",
    "CARACAL_ADMIN_TOKEN",
    "SECRET_STORE_KEK",
    "SECRET_STORE_KEK_PREVIOUS",
    "STREAMS_HMAC_KEY",
    "AUDIT_HMAC_KEY",
    "AUDIT_HMAC_KEY_PREVIOUS",
    "CARACAL_MODE",
    "CARACAL_DATA_DIR",
    "METRICS_BEARER",
    "PORT",
    "HOST",
    "LOG_LEVEL",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """One `caracal-api` process; stdout (JSON logs) and stderr go to files."""

    env: dict[str, str]
    workdir: Path
    args: tuple[str, ...] = ("serve",)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"server-{self.port}.out"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"server-{self.port}.err"

    def start(self) -> ServerProcess:
        env = {**self.env, "PORT": str(self.port)}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "caracal_api", *self.args],
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=err,
            )
        return self

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}: {self.stderr()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not healthy in {timeout}s: {self.stderr()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def bootstrap_token(self) -> str | None:
        prefix = "caracal-api: bootstrap admin token (shown once): "
        for line in self.stderr().splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None
