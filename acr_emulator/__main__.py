"""`python -m acr_emulator`: serve a scenario over HTTPS until interrupted.

The ready file is written (atomically) only after the port accepts connections, so scripts can
wait for it instead of polling the port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from aiohttp import web

from .faults import SKU_LIMITS_PER_MINUTE
from .scenario import ScenarioError
from .server import Emulator, server_ssl_context, test_ca, write_ca


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m acr_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    p.add_argument("--scenario", help="scenario JSON file (default: an empty registry)")
    p.add_argument("--data-dir", required=True, help="directory for ca.pem")
    p.add_argument("--ready-file", help="JSON {endpoint, ca_file, username, password} once up")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default="s3cret-admin")
    p.add_argument("--anonymous-pull", action="store_true")
    p.add_argument(
        "--abac",
        action="store_true",
        help="act as an ABAC-enabled registry: wildcard repository scopes are not granted",
    )
    p.add_argument("--controls", action="store_true", help="enable the /_emulator/ endpoint")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    p.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="requests per second, for reads and (separately) for writes",
    )
    p.add_argument("--rate-limit-reads", type=float, default=None, help="reads per second")
    p.add_argument("--rate-limit-writes", type=float, default=None, help="writes per second")
    p.add_argument(
        "--sku",
        choices=sorted(SKU_LIMITS_PER_MINUTE),
        help="ACR's documented read/write limits for the SKU (per minute: reads "
        "1,000/3,000/10,000, writes 100/500/2,000 for basic/standard/premium)",
    )
    p.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds")
    args = p.parse_args(argv)
    for flag in ("rate_limit", "rate_limit_reads", "rate_limit_writes"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            name = "--" + flag.replace("_", "-")
            p.error(f"{name} must be a positive number of requests per second, got {value}")
    if args.sku and (args.rate_limit or args.rate_limit_reads or args.rate_limit_writes):
        p.error("--sku sets both limits: give either --sku or --rate-limit[-reads|-writes]")
    if args.latency < 0:
        p.error(f"--latency must be >= 0 seconds, got {args.latency}")
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be 0-65535, got {args.port}")
    return args


async def serve(args: argparse.Namespace) -> None:
    emu = Emulator.build(
        args.scenario,
        args.username,
        args.password,
        args.anonymous_pull,
        args.controls,
        abac=args.abac,
    )
    emu.controls.latency = args.latency
    if args.sku:
        emu.controls.set_sku(args.sku)
    else:
        reads = args.rate_limit_reads or args.rate_limit
        writes = args.rate_limit_writes or args.rate_limit
        emu.controls.set_rate_limits(reads, writes)
    emu.tokens.lifetime = args.token_lifetime
    ca = test_ca()
    ca_file = write_ca(ca, Path(args.data_dir))
    runner = web.AppRunner(emu.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=server_ssl_context(ca))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint = f"https://{args.host}:{port}"
    info = {
        "endpoint": endpoint,
        "ca_file": str(ca_file.resolve()),
        "username": args.username,
        "password": args.password,
    }
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        Path(tmp).write_text(json.dumps(info))
        os.replace(tmp, args.ready_file)
    print(f"acr_emulator listening on {endpoint} (CA: {ca_file})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except ScenarioError as exc:
        print(f"acr_emulator: bad scenario: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
