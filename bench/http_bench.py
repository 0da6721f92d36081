"""HTTP benchmark: a real `caracal-api serve` on the machine's PostgreSQL and Redis, driven by
the Caracal load driver (health, list 100 resources, create resource, activation → signed
stream event). Prints the driver's table; never asserts on time.

    uv run python bench/http_bench.py [--scenarios health,list,create,activate]
        [--concurrency 1,16,64] [--duration 10] [--processes N] [--out-md FILE]

The driver is the stdlib-only `bench.py` shipped beside this repository
(`../shared/bench/bench.py` by default; `--driver` points elsewhere). The server runs with
`LOG_LEVEL=warn` and rate limits off, in a throwaway database that is dropped afterwards.
Each scenario is one driver run, followed by the share of CPU time the hypervisor stole
from the machine meanwhile (`--out-md FILE` writes FILE-<scenario>.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import free_port, server_env  # noqa: E402
from tests.fixtures import pg  # noqa: E402

DEFAULT_DRIVER = ROOT.parent / "shared" / "bench" / "bench.py"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def stack_pids() -> list[str]:
    out = subprocess.run(["pgrep", "-x", "postgres|redis-server"], capture_output=True, text=True)
    return out.stdout.split()


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def listeners(port: int) -> int:
    """TCP sockets listening on `port` (one per API process with API_PROCESSES > 1)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    count += 1
    return count


def wait_listening(port: int, processes: int, timeout: float = 120) -> None:
    """Connections made before every process listens would all land on the first one."""
    deadline = time.monotonic() + timeout
    while listeners(port) < processes:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {listeners(port)} of {processes} API processes listen")
        time.sleep(0.2)


def cpu_times() -> list[int]:
    """The machine's aggregate CPU counters (`cpu` line of /proc/stat), in clock ticks."""
    with open("/proc/stat") as stat:
        return [int(value) for value in stat.readline().split()[1:]]


def report_steal(scenario: str, before: list[int], after: list[int]) -> None:
    """Print the share of CPU time the hypervisor took from this virtual machine.

    On a shared host, figures measured while steal is high say more about the neighbours
    than about the server; the run prints it so a table can be judged (docs/performance.md).
    """
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta[:8])  # user nice system idle iowait irq softirq steal
    steal = delta[7] if len(delta) > 7 else 0
    if total > 0:
        print(f"{scenario}: host CPU steal {100 * steal / total:.1f}%", file=sys.stderr)


def run_scenarios(command: list[str], scenarios: list[str], out_md: str | None) -> int:
    """One driver run per scenario, each followed by the steal it saw (steal comes in
    bursts, so a whole-run average would hide which figures it touched). `--out-md FILE`
    writes FILE-<scenario>.md."""
    worst = 0
    for scenario in scenarios:
        extra = ["--scenarios", scenario]
        if out_md:
            stem = out_md.removesuffix(".md")
            extra += ["--out-md", f"{stem}-{scenario}.md"]
        before = cpu_times()
        worst = max(worst, subprocess.run(command + extra, check=False).returncode)
        report_steal(scenario, before, cpu_times())
    return worst


def start_profiler(out: str, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (and its children) until interrupted; writes a flame graph."""
    command = ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--output", out]
    command += ["--rate", "200", "--nonblocking"]
    if not out.endswith(".svg"):
        command += ["--format", "raw"]  # collapsed stacks, for flamegraph.pl or grep
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--driver", type=Path, default=DEFAULT_DRIVER)
    parser.add_argument("--scenarios", default="health,list,create,activate")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--activate-concurrency", default="1,4")
    parser.add_argument("--duration", default="10")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--processes", type=int, default=1, help="API_PROCESSES of the server")
    parser.add_argument("--out-md")
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server with py-spy (on PATH): FILE.svg flame graph, else collapsed stacks",
    )
    args = parser.parse_args()
    if not args.driver.exists():
        raise SystemExit(f"load driver not found at {args.driver} (use --driver)")

    admin = pg.admin_dsn()
    name = f"caracal_bench_{secrets.token_hex(3)}"
    dsn = asyncio.run(pg.create_migrated_database(admin, name))
    token = "cat_bench_" + secrets.token_hex(16)
    streams_key = secrets.token_hex(32)
    port = free_port()
    env = server_env(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": REDIS_URL,
            "CARACAL_ADMIN_TOKEN": token,
            "SECRET_STORE_KEK": secrets.token_hex(32),
            "STREAMS_HMAC_KEY": streams_key,
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "LOG_LEVEL": "warn",
            "API_V1_RATE_LIMIT_PER_MIN": "0",
            "POLICY_VALIDATE_RATE_LIMIT_PER_MIN": "0",
            "PORT": str(port),
            "API_PROCESSES": str(args.processes),
        }
    )
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text(token)
        key_file = Path(tmp) / "streams.key"
        key_file.write_text(streams_key)
        server = subprocess.Popen(
            [sys.executable, "-m", "caracal_api", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(url, server)
            wait_listening(port, args.processes)
            command = [
                sys.executable,
                str(args.driver),
                "--base-url",
                url,
                "--admin-token-file",
                str(token_file),
                "--redis-url",
                REDIS_URL,
                "--streams-hmac-key-file",
                str(key_file),
                "--server-pid",
                str(server.pid),
                "--stack-pid",
                ",".join(stack_pids()),
                "--concurrency",
                args.concurrency,
                "--activate-concurrency",
                args.activate_concurrency,
                "--duration",
                args.duration,
                "--engine",
                args.engine,
                "--label",
                args.label or f"caracal-api {name}",
            ]
            profiler = start_profiler(args.profile, server.pid) if args.profile else None
            try:
                return run_scenarios(command, args.scenarios.split(","), args.out_md)
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(60)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            asyncio.run(pg.drop_database(admin, name))


if __name__ == "__main__":
    raise SystemExit(main())
