"""`tracehouse serve [ingest|query]`, `tracehouse migrate`. Flags override `TRACEHOUSE_*` variables."""

from __future__ import annotations

import argparse
import sys
from types import FrameType
from typing import Any

from pydantic import ValidationError

from tracehouse import compiled, logs
from tracehouse.settings import Settings, describe
from tracehouse.tuning import tune_process


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="where embedded data lives (default ./.tracehouse)")
    common.add_argument("--clickhouse-url", help="chdb:///dir or http(s)://user:pass@host:port/db")
    common.add_argument("--clickhouse-cluster", help="cluster name for ON CLUSTER migrations")
    common.add_argument("--blob-url", help="file:///dir or s3://bucket/prefix")
    common.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (MinIO, R2, ...)")

    parser = argparse.ArgumentParser(prog="tracehouse", description="Tracing backend for LLM applications")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("service", nargs="?", choices=["all", "ingest", "query"], default="all")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    commands.add_parser("migrate", parents=[common], help="apply schema migrations and exit")
    keys_help = (
        "manage API keys (embedded mode: run while the server is stopped, chDB allows one process per data "
        "directory; with a ClickHouse server: any time, a running server notices a revocation within 10 s)"
    )
    keys = commands.add_parser("keys", help=keys_help, description=keys_help)
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", parents=[common], help="create a key (printed once)")
    create.add_argument(
        "--tenant",
        action="append",
        required=True,
        help="tenant (workspace) name; repeatable: requests pick one with x-tenant-id, else the first is used",
    )
    key_commands.add_parser("list", parents=[common], help="list keys (prefix, tenants, created, revoked)")
    revoke = key_commands.add_parser("revoke", parents=[common], help="revoke a key by id or prefix")
    revoke.add_argument("key", help="key id or the prefix shown by `keys list`")
    spool = commands.add_parser("spool", help="the ingest spool (run while the server is stopped)")
    spool_commands = spool.add_subparsers(dest="spool_command", required=True)
    spool_commands.add_parser(
        "requeue", parents=[common], help="put quarantined records back into the spool, to be stored at next start"
    )
    return parser


def _requeue(settings: Settings) -> None:
    from storage.spool import Spool

    spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes)
    try:
        print(f"requeued {spool.requeue_quarantined()} records; they are stored when the server starts")
    finally:
        spool.close()


def _keys(args: argparse.Namespace, settings: Settings) -> None:
    from storage import Storage
    from storage.keys import KeyRepository

    storage = Storage.open(
        settings.clickhouse_url,
        settings.blob_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        cluster=settings.clickhouse_cluster,
    )
    try:
        keys = KeyRepository(storage.clickhouse)
        if args.keys_command == "create":
            try:
                info, key = keys.create(args.tenant)
            except ValueError as error:
                print(f"tracehouse: {error}", file=sys.stderr)
                raise SystemExit(2) from None
            tenants = ", ".join(f"{n} ({t})" for n, t in zip(info.tenant_names, info.tenant_ids, strict=True))
            print(f"key id {info.id} for {tenants}\n{key}\n(shown once: store it now)")
        elif args.keys_command == "list":
            for info in keys.list():
                state = "revoked" if info.revoked else "active"
                print(
                    f"{info.id}  {info.prefix}…  {state:7}  {info.created_at:%Y-%m-%d %H:%M}  "
                    f"{', '.join(info.tenant_names)}"
                )
        elif keys.revoke(args.key) == 0:
            print(f"no active key matches {args.key!r}", file=sys.stderr)
            raise SystemExit(1)
        else:
            print("revoked")
    finally:
        storage.close()


def load_settings(args: argparse.Namespace) -> Settings:
    names = set(Settings.model_fields)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names and v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as error:
        print(f"tracehouse: {describe(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    refusal = compiled.refusal()
    if refusal:
        print(f"tracehouse: {refusal}", file=sys.stderr)
        raise SystemExit(2)
    settings = load_settings(args)
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "keys":
        _keys(args, settings)
        return
    if args.command == "spool":
        _requeue(settings)
        return
    if args.command == "migrate":
        from storage import Storage

        Storage.open(
            settings.clickhouse_url,
            settings.blob_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            cluster=settings.clickhouse_cluster,
        ).close()
        print("migrations applied")
        return
    import uvicorn

    from tracehouse.app import create_app
    from tracehouse.head_limit import BoundedHeadProtocol

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn re-raises the stop signal after shutdown; a graceful stop that flushed everything is a
            # clean exit, so report 0 to supervisors instead of "killed by SIGTERM".
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    app = create_app(settings, args.service)
    tune_process()
    # The batcher thread's Python work holds the GIL in 5 ms slices by default, and an ingest request needs
    # the event loop several times before its ack: shorter slices cut ack latency (measured in tests/bench).
    sys.setswitchinterval(0.001)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
        http=BoundedHeadProtocol,
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,  # json: ours
    )
    Server(config).run()


if __name__ == "__main__":
    main()
