"""`caracal-api`: serve, migrate, dispatcher, audit-ingest, token, check, audit, outbox, secrets.

Exit codes: 0 success, 1 a check found a problem (e.g. a broken audit chain), 2 bad usage or
configuration, or a dependency that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop
from redis.asyncio import Redis

from caracal_api import logs
from caracal_api.config import ConfigError, Settings, check_production, load_settings
from caracal_api.kit import migrate as migrations

PROG = "caracal-api"


class Exit(Exception):
    """Stop a command with one line on stderr and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str) -> Exit:
    return Exit(message, 2)


# --- dependencies --------------------------------------------------------------------------


def resolve_database(settings: Settings) -> tuple[str, bool]:
    """The DSN to use and whether it is the embedded server of CARACAL_DATA_DIR."""
    if settings.database_url is not None:
        return settings.database_url, False
    if settings.production:
        raise fail("DATABASE_URL is required in production")
    from caracal_api.embedded import postgres

    try:
        return postgres.start(settings.data_dir), True
    except Exception as exc:
        raise fail(f"embedded PostgreSQL did not start: {exc}") from None


async def ensure_schema(dsn: str, embedded: bool) -> None:
    """Embedded mode migrates; an external database must already be at head."""
    if embedded:
        await migrations.upgrade_head(dsn)
        return
    try:
        current = await migrations.current_revision(dsn)
    except Exception as exc:
        raise fail(f"cannot reach PostgreSQL: {type(exc).__name__}: {exc}") from None
    if current != migrations.HEAD:
        raise fail(
            f"database schema is at {current or 'none'}, not {migrations.HEAD}; run {PROG} migrate"
        )


def open_redis(settings: Settings) -> tuple[Redis, bool]:
    if settings.redis_url is None:
        from caracal_api.embedded import redis_store

        return redis_store.create(), True
    return (
        Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5),
        False,
    )


def with_kek(settings: Settings, embedded_pg: bool) -> Settings:
    if settings.secret_store_kek is not None:
        return settings
    if not embedded_pg:
        raise fail("SECRET_STORE_KEK: is required outside embedded mode")
    from caracal_api.secret_store.keys import embedded_kek

    return dataclasses.replace(settings, secret_store_kek=embedded_kek(settings.data_dir))


def require_shared_redis(settings: Settings, what: str) -> None:
    if settings.redis_url is None:
        raise fail(
            f"REDIS_URL: {what} needs a shared Redis; without REDIS_URL the workers run "
            f"inside `{PROG} serve`"
        )


# --- commands ------------------------------------------------------------------------------


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from caracal_api.admin_tokens.service import print_banner, seed_bootstrap
    from caracal_api.app import create_app
    from caracal_api.runtime import Runtime
    from caracal_api.server import DrainingServer, ProcessGroup, build_config, listen_socket

    child = args.api_child_port is not None
    if args.no_workers and not child:
        require_shared_redis(settings, "serve --no-workers")
    if settings.api_processes > 1:
        require_shared_redis(settings, "API_PROCESSES > 1")
    if settings.production and settings.admin_token is None:
        raise fail("CARACAL_ADMIN_TOKEN is required in production")
    dsn, embedded_pg = resolve_database(settings)
    if not child:
        await ensure_schema(dsn, embedded_pg)
    settings = with_kek(settings, embedded_pg)
    lock = None
    if settings.redis_url is None:
        from caracal_api.embedded.redis_store import DataDirLock

        lock = DataDirLock(settings.data_dir)
        if not lock.acquire():
            raise fail(
                f"REDIS_URL: another {PROG} serve already runs on {settings.data_dir} "
                "with the in-process stream store; set REDIS_URL to run several"
            )
    port = settings.port if args.api_child_port is None else args.api_child_port
    sock = listen_socket(settings.host, port, reuse_port=settings.api_processes > 1)
    redis, embedded_redis = open_redis(settings)
    runtime = Runtime.build(
        settings, dsn, redis, embedded_postgres=embedded_pg, embedded_redis=embedded_redis
    )
    runtime.run_dispatcher = runtime.run_audit_ingest = not (args.no_workers or child)
    group = ProcessGroup()
    try:
        if not child:
            generated = await seed_bootstrap(runtime.engine, settings.admin_token)
            if generated is not None:
                print_banner(generated)
            group.spawn(settings.api_processes - 1, sock.getsockname()[1])
        app = create_app(runtime)
        server = DrainingServer(
            build_config(app, settings.host, settings.port, settings.shutdown_grace_ms),
            runtime,
            on_signal=group.forward,
        )
        await server.serve(sockets=[sock])
        forced = await group.wait(settings.shutdown_grace_ms / 1000)
        return 1 if server.forced or forced else 0
    finally:
        group.kill()
        await runtime.close()
        if lock is not None:
            lock.release()


async def _run_worker(
    settings: Settings, name: str, build: Callable[[Any, Any, Redis], Any]
) -> int:
    require_shared_redis(settings, name)
    dsn, embedded_pg = resolve_database(settings)
    await ensure_schema(dsn, embedded_pg)
    from caracal_api.kit.db import create_engine

    engine = create_engine(settings, dsn, pool_size=max(2, min(settings.db_pool_max, 5)))
    redis, _ = open_redis(settings)
    worker = build(settings, engine, redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(worker.run())
    await stop.wait()
    finished = await worker.stop(settings.shutdown_grace_ms / 1000)
    await asyncio.gather(task, return_exceptions=True)
    await engine.dispose()
    await redis.aclose()
    return 0 if finished in (None, True) else 1


class DispatcherWorker:
    """`caracal-api dispatcher`: the outbox dispatcher plus the duties of every process that
    runs it, as in `serve` — the admin-audit chain sweep (foundation §13.5) and the DCR
    expiry sweep (objects.md §2.3)."""

    def __init__(self, settings: Settings, engine: Any, redis: Redis) -> None:
        from caracal_api.applications.sweep import DcrSweepHook
        from caracal_api.audit.chainer import ChainScheduler
        from caracal_api.auth.tokens import TokenVerifier
        from caracal_api.events.dispatcher import Dispatcher
        from caracal_api.kit import db
        from caracal_api.lifecycle import ChainSweep
        from caracal_api.runtime import Limiters, Runtime

        self.dispatcher = Dispatcher(
            settings, engine, redis, listen_dsn=settings.session_database_url
        )
        self.runtime = Runtime(
            settings=settings,
            engine=engine,
            sessionmaker=db.sessionmaker(engine),
            redis=redis,
            verifier=TokenVerifier(engine, redis, settings.admin_token_last_used_debounce_sec),
            limiters=Limiters.build(settings, redis),
            chains=ChainScheduler(engine, settings.audit_hmac_key),
            session_dsn=settings.session_database_url or "",
            run_dispatcher=True,
        )
        self.hooks: list[Any] = [ChainSweep(), DcrSweepHook()]

    async def run(self) -> None:
        started: list[Any] = []
        try:
            for hook in self.hooks:
                await hook.start(self.runtime)
                started.append(hook)
            await self.dispatcher.run()
        finally:
            for hook in reversed(started):
                await hook.stop(self.runtime, 0.0)
            await self.runtime.chains.drain()

    async def stop(self, grace: float | None = None) -> bool:
        return await self.dispatcher.stop(grace)


async def cmd_dispatcher(settings: Settings, _args: argparse.Namespace) -> int:
    return await _run_worker(settings, "dispatcher", DispatcherWorker)


async def cmd_audit_ingest(settings: Settings, _args: argparse.Namespace) -> int:
    from caracal_api.events.audit_ingest import AuditIngest

    return await _run_worker(settings, "audit-ingest", AuditIngest)


async def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    if settings.database_url is None:
        dsn, _ = resolve_database(settings)
    else:
        dsn = settings.session_database_url or settings.database_url
    try:
        await migrations.upgrade_head(dsn)
    except OSError as exc:
        raise fail(f"cannot reach PostgreSQL: {exc}") from None
    print(json.dumps({"ok": True, "revision": migrations.HEAD}))
    return 0


async def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from caracal_api.admin_tokens import service
    from caracal_api.admin_tokens.schemas import AdminTokenCreate
    from caracal_api.errors import CaracalError
    from caracal_api.kit.db import create_engine

    try:
        payload = AdminTokenCreate.model_validate(
            {
                "name": args.name,
                "scope": "zone" if args.zone else "global",
                "capability": args.capability,
                **({"zone_id": args.zone} if args.zone else {}),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(f"invalid token request: {where}: {first['msg']}") from None
    dsn, embedded_pg = resolve_database(settings)
    await ensure_schema(dsn, embedded_pg)
    engine = create_engine(settings, dsn, pool_size=1)
    try:
        prepared = await service.prepare_token()
        async with engine.begin() as conn:
            token = await service.mint(conn, payload, "cli", prepared)
    except CaracalError as exc:
        raise fail(f"{exc.code}: {exc.error_description}") from None
    finally:
        await engine.dispose()
    keys = ("id", "name", "scope", "capability", "zone_id", "token")
    print(json.dumps({k: token[k] for k in keys}))
    return 0


async def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"config": "ok"}
    ok = True
    try:
        dsn, embedded_pg = resolve_database(settings)
        current = await migrations.current_revision(dsn)
        report["postgres"] = "embedded" if embedded_pg else "external"
        report["schema"] = current
        if current != migrations.HEAD and not embedded_pg:
            ok = False
            report["schema_error"] = (
                f"database schema is at {current or 'none'}, not {migrations.HEAD}; "
                f"run {PROG} migrate"
            )
    except Exit as exc:
        ok, report["postgres"] = False, str(exc)
    except Exception as exc:
        ok, report["postgres"] = False, f"unreachable: {type(exc).__name__}"
    if settings.redis_url is None:
        report["redis"] = "embedded"
    else:
        redis, _ = open_redis(settings)
        try:
            report["redis"] = "external" if await redis.ping() else "unreachable"
        except Exception as exc:
            report["redis"] = f"unreachable: {type(exc).__name__}"
        finally:
            await redis.aclose()
        ok = ok and report["redis"] == "external"
    if settings.secret_store_kek is None and settings.database_url is not None:
        ok = False
        report["kek"] = "SECRET_STORE_KEK is required outside embedded mode"
    report["ok"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


async def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from caracal_api.audit.verify import chain_keys, verify_chain
    from caracal_api.kit.db import create_engine

    dsn, embedded_pg = resolve_database(settings)
    await ensure_schema(dsn, embedded_pg)
    engine = create_engine(settings, dsn, pool_size=1)
    broken = False
    try:
        keys = [args.zone] if args.zone else await chain_keys(engine)
        for key in keys:
            result = await verify_chain(
                engine,
                key,
                hmac_key=settings.audit_hmac_key,
                previous_keys=settings.audit_hmac_keys_previous,
            )
            broken = broken or not result["ok"]
            print(json.dumps(result))
    finally:
        await engine.dispose()
    return 1 if broken else 0


async def cmd_outbox(settings: Settings, args: argparse.Namespace) -> int:
    from caracal_api.events.health import outbox_status, requeue
    from caracal_api.kit.db import create_engine

    dsn, embedded_pg = resolve_database(settings)
    await ensure_schema(dsn, embedded_pg)
    engine = create_engine(settings, dsn, pool_size=1)
    try:
        if args.outbox_command == "status":
            print(json.dumps(await outbox_status(engine)))
        else:
            count = await requeue(engine, stream=args.stream, id=args.id)
            print(json.dumps({"requeued": count}))
    finally:
        await engine.dispose()
    return 0


async def cmd_secrets_rekey(settings: Settings, _args: argparse.Namespace) -> int:
    from caracal_api.kit.db import create_engine
    from caracal_api.secret_store.keys import load_keyring
    from caracal_api.secret_store.rekey import rekey

    dsn, embedded_pg = resolve_database(settings)
    await ensure_schema(dsn, embedded_pg)
    keys = load_keyring(settings)
    engine = create_engine(settings, dsn, pool_size=2)
    try:
        return await rekey(engine, keys, sys.stdout)
    finally:
        await engine.dispose()


# --- wiring --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Caracal API control plane")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (and the workers)")
    serve.add_argument("--no-workers", action="store_true", help="run the API alone")
    # Set by the parent of API_PROCESSES > 1 for its children: serve on this listening socket.
    serve.add_argument("--api-child-port", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve, requirement="serve")

    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(
        func=cmd_migrate, requirement="migrate"
    )
    sub.add_parser("dispatcher", help="run the outbox dispatcher alone").set_defaults(
        func=cmd_dispatcher, requirement="dispatcher"
    )
    sub.add_parser("audit-ingest", help="run the audit ingest worker alone").set_defaults(
        func=cmd_audit_ingest, requirement="audit-ingest"
    )
    sub.add_parser("check", help="validate configuration and reach dependencies").set_defaults(
        func=cmd_check, requirement="check"
    )

    token = sub.add_parser("token", help="admin tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="mint an admin token offline")
    create.add_argument("--name", required=True)
    create.add_argument("--capability", default="write", choices=["read", "write", "approve"])
    create.add_argument("--zone", default=None)
    create.set_defaults(func=cmd_token_create, requirement="token")

    audit = sub.add_parser("audit", help="admin audit").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser("verify", help="verify admin-audit hash chains")
    verify.add_argument("--zone", default=None)
    verify.set_defaults(func=cmd_audit_verify, requirement="audit")

    outbox = sub.add_parser("outbox", help="outbox operations")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_sub.add_parser("status", help="pending and dead figures").set_defaults(
        func=cmd_outbox, requirement="outbox"
    )
    requeue = outbox_sub.add_parser("requeue", help="make dead rows pending again")
    requeue.add_argument("--stream", default=None)
    requeue.add_argument("--id", default=None)
    requeue.set_defaults(func=cmd_outbox, requirement="outbox")

    secrets_cmd = sub.add_parser("secrets", help="secret store").add_subparsers(
        dest="secrets_command", required=True
    )
    secrets_cmd.add_parser(
        "rekey", help="re-seal every envelope under the current key"
    ).set_defaults(func=cmd_secrets_rekey, requirement="secrets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        check_production(settings, args.requirement)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    command: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        # uvloop: socket I/O, which dominates the HTTP and driver work, in C.
        return asyncio.run(command(settings, args), loop_factory=uvloop.new_event_loop)
    except Exit as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
