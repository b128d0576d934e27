"""The ``threadline`` command: serve, worker, migrate, keys, runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

import pydantic
import sqlalchemy.exc

from threadline.domain.run_status import RunStatus
from threadline.errors import ThreadlineError
from threadline.observability.logs import configure, uvicorn_log_config
from threadline.services.run_admin import LISTED
from threadline.settings import Settings
from threadline.wiring import build_services

log = logging.getLogger("threadline")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from threadline.app import create_app
    from threadline.server import config

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.no_worker:
        settings = Settings.model_validate({**settings.model_dump(), "worker": False})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = uvicorn.Server(
        config(
            create_app(settings),
            settings,
            settings.host,
            settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=10,
            # json: uvicorn's lines go through the root's JSON handler too.
            **({"log_config": uvicorn_log_config()} if settings.log_format == "json" else {}),
        )
    )
    server.run()
    return 0


async def _work(settings: Settings) -> None:
    """A worker process: executes runs and sweeps until SIGTERM or SIGINT, then
    stops taking turns and gives running ones the grace period."""
    from threadline.api.metrics import MetricsListener

    services = build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listener = MetricsListener(services) if settings.metrics_port is not None else None
    try:
        await services.start(api=False)
        if listener is not None:
            await listener.start()
        log.info("worker %s started", services.worker.worker_id)
        await stop.wait()
        log.info("stopping: running turns get %.0f s", settings.worker_grace_seconds)
    finally:
        if listener is not None:
            await listener.aclose()
        await services.aclose()


async def _migrate(settings: Settings) -> None:
    services = build_services(settings)
    try:
        await services.migrate()
    finally:
        await services.aclose()
    print(f"schema is up to date ({settings.resolved_database_url.split('://')[0]})")


async def _keys(settings: Settings, args: argparse.Namespace) -> None:
    services = build_services(settings)
    try:
        await services.db.migrate()
        if args.keys_command == "create":
            key = await services.keys.create(args.project, args.name)
            print(json.dumps({"id": key.id, "project_id": key.project_id, "key": key.key}))
        elif args.keys_command == "list":
            for row in await services.keys.list():
                print(json.dumps(row))
        else:
            await services.keys.revoke(args.key_id)
            print(f"revoked {args.key_id}")
    finally:
        await services.aclose()


async def _runs(settings: Settings, args: argparse.Namespace) -> None:
    services = build_services(settings)  # a deployment's database: not migrated here
    try:
        admin = services.run_admin
        if args.runs_command == "list":
            statuses = [RunStatus(s) for s in args.status] if args.status else LISTED
            for row in await admin.list(statuses, args.project, args.limit):
                run = row.pop("run")
                print(json.dumps({**_summary(run), **row}))
        elif args.runs_command == "show":
            print(json.dumps(await admin.show(args.run_id), indent=2))
        else:
            run = await admin.cancel(args.run_id)
            print(json.dumps(_summary(run)))
    finally:
        await services.aclose()


def _summary(run: dict[str, object]) -> dict[str, object]:
    keys = ("id", "status", "thread_id", "assistant_id", "model", "created_at", "started_at")
    return {key: run.get(key) for key in keys}


def _limit(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="threadline", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server (migrates first)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="the API only: runs are executed by `threadline worker` processes",
    )
    sub.add_parser("worker", help="execute runs and sweep (no HTTP); migrates first")
    sub.add_parser("migrate", help="bring the database schema up to date")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key for a project")
    create.add_argument("--project", default="default")
    create.add_argument("--name", default=None)
    keys_sub.add_parser("list", help="list keys (never the secret)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    runs = sub.add_parser("runs", help="look at and cancel runs of every project")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    listing = runs_sub.add_parser(
        "list", help="active runs (queued, in_progress, requires_action, cancelling), oldest first"
    )
    listing.add_argument("--project", default=None, help="only this project's runs")
    listing.add_argument(
        "--status",
        action="append",
        choices=[str(s) for s in RunStatus],
        help="only runs with this status (repeatable)",
    )
    listing.add_argument("--limit", type=_limit, default=100)
    show = runs_sub.add_parser("show", help="a run, its steps and its timeline")
    show.add_argument("run_id")
    cancel = runs_sub.add_parser("cancel", help="cancel a run as its project's API would")
    cancel.add_argument("run_id")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a failure is one line on stderr and exit status 1."""
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except pydantic.ValidationError as exc:
        return _fail(f"invalid settings: {exc}")
    configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _serve(settings, args)
    try:
        if args.command == "worker":
            if settings.queue != "procrastinate":
                _fail("a worker process needs THREADLINE_QUEUE=procrastinate")
                return 2  # a usage error, as argparse's
            settings = Settings.model_validate({**settings.model_dump(), "worker": True})
            asyncio.run(_work(settings))
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "runs":
            asyncio.run(_runs(settings, args))
        else:
            asyncio.run(_keys(settings, args))
    except ThreadlineError as exc:
        return _fail(exc.message)
    except (OSError, sqlalchemy.exc.SQLAlchemyError) as exc:
        return _fail(f"cannot use the database: {exc}")
    return 0


def _fail(message: str) -> int:
    print(f"threadline: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
