"""The `care-gateway` command line: wiring only; each sub-command calls into its stage's package."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.app import build_services, create_app, demo_credentials
    from gateway.demo.load import ensure_demo_loaded

    if args.mllp_port is not None:
        settings.mllp_port = args.mllp_port
    if "base_url" not in settings.model_fields_set:  # links must name the port actually served
        settings.base_url = f"http://{args.host}:{args.port}"
    services = build_services(settings)
    if args.demo or settings.load_demo:
        ensure_demo_loaded(services, announce=print)
        for client in demo_credentials(services):
            print(
                f"demo client {client['client_id']} ({client.get('organization')}, {client.get('role')}): "
                f"secret {client['client_secret']}"
            )
    app = create_app(settings, services)
    print(f"care-gateway serving FHIR R4 at {settings.fhir_base} (database: {services.store.engine.dialect.name})")
    # What start-up built (modules, the app, its caches) lives as long as the process, so it is
    # moved out of the collector's reach: its full passes walked all of it again, ~80 ms each,
    # about 5 % of the CPU of a gateway under MLLP load. Cycles made later are collected as ever.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.store import migrate
    from gateway.store.engine import make_engine

    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    if args.action == "upgrade":
        migrate.upgrade(engine)
    current = migrate.current_revision(engine)
    head = migrate.head_revision()
    print(f"database revision {current or '(empty)'}; code expects {head}")
    return 0 if args.action != "check" or current == head else 1


def _load(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import build_services
    from gateway.fhir.errors import FhirError
    from gateway.fhir.loader import load_file

    services = build_services(settings)
    failed = 0
    for name in args.files:
        try:
            count = load_file(services.store, Path(name))
            print(f"{name}: {count} written")
        except (FhirError, OSError, ValueError) as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="care-gateway",
        description="Interoperability gateway for integrated health and social care (FHIR R4). "
        "Settings come from GATEWAY_* environment variables (GATEWAY_DATABASE_URL, GATEWAY_DATA_DIR, "
        "GATEWAY_BASE_URL, GATEWAY_REDIS_URL …).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the FHIR API (and the MLLP listener)", description="Serve the gateway.")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    serve.add_argument("--mllp-port", type=int, default=None, help="HL7 v2 MLLP port (default 2575)")
    serve.add_argument("--demo", action="store_true", help="load the demo data set from fixtures/ first")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database migrations", description="Inspect or upgrade the database schema.")
    db.add_argument("action", choices=["upgrade", "current", "check"], help="upgrade to head, show, or check")
    db.set_defaults(func=_db)

    load = sub.add_parser(
        "load", help="load FHIR JSON files (resources or Bundles)", description="Load FHIR JSON into the store."
    )
    load.add_argument("files", nargs="+", help="JSON files: a resource, or a transaction/batch/collection Bundle")
    load.set_defaults(func=_load)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Sub-commands owned by other stages (ingest, client, demo …), registered by their packages."""
    from gateway.cli_extensions import EXTENSIONS

    return EXTENSIONS


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    handler = getattr(args, "handler", None)
    if handler is not None:  # sub-commands that work on the database directly (e.g. `client`)
        from gateway.store import migrate
        from gateway.store.engine import make_engine

        settings.ensure_data_dir()
        engine = make_engine(settings.effective_database_url)
        migrate.upgrade(engine)
        code: int = handler(args, settings, engine)
        return code
    func: Command = args.func
    return func(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
