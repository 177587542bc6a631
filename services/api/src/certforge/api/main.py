"""`certforge-api`: serve the REST gateway, create a product admin, or print the OpenAPI spec."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvicorn

from certforge.api.settings import ApiSettings
from certforge.common.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="certforge-api", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the API (the default)")
    boot = sub.add_parser("bootstrap", help="create a product admin and print its token once")
    boot.add_argument("--name", default="admin", help="identity name (default: admin)")
    spec = sub.add_parser("openapi", help="print the OpenAPI document")
    spec.add_argument("--output", help="write to this file instead of stdout")
    args = parser.parse_args(argv)

    if args.command == "openapi":
        _openapi(args.output)
    elif args.command == "bootstrap":
        print(asyncio.run(_bootstrap(args.name)))
    else:
        _serve()


def _serve() -> None:
    settings = ApiSettings.load_or_exit("certforge-api")
    configure_logging("api", settings.log_level)
    uvicorn.run(
        "certforge.api.app:create_app_from_env",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
        # HTTPS on this port when both files are set (settings checked they load together)
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


async def _bootstrap(name: str) -> str:
    from certforge.api.domain.identities import create_admin
    from certforge.common.db.engine import create_engine, session_factory

    settings = ApiSettings.load_or_exit("certforge-api")
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    try:
        async with session_factory(engine)() as session:
            return await create_admin(session, name)
    finally:
        await engine.dispose()


def _openapi(output: str | None) -> None:
    from certforge.api.app import openapi_document

    document = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if output:
        with open(output, "w") as f:
            f.write(document)
    else:
        sys.stdout.write(document)
