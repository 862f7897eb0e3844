"""The ``peerpigeon`` command: ``hub``, ``peer``, ``demo``, ``sim``.

``peerpigeon hub`` runs a signaling server (a hub with ``--hub``) on 127.0.0.1:3000 by
default; exposing it on other interfaces is a deliberate ``--host 0.0.0.0``. Where no flag
is given, the reference's environment variables apply: PORT, HOST, MAX_CONNECTIONS,
HUB_MESH_NAMESPACE, BOOTSTRAP_HUBS (comma-separated).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import anyio

from peerpigeon.protocol.errors import ConfigError
from peerpigeon.protocol.server import DEFAULT_HUB_NAMESPACE, ServerConfig

__all__ = ["main"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"peerpigeon: {name} must be an integer, got {value!r}") from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerpigeon", description="WebRTC peer-to-peer mesh networking (Python)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log protocol events")
    sub = parser.add_subparsers(dest="command", required=True)

    hub = sub.add_parser("hub", help="run a signaling server / hub")
    hub.add_argument("--host", default=None, help="bind address (default 127.0.0.1; env HOST)")
    hub.add_argument(
        "--port", type=int, default=None, help="port (default 3000, 0 picks a free one; env PORT)"
    )
    hub.add_argument("--hub", action="store_true", help="act as a hub (federation)")
    hub.add_argument(
        "--bootstrap",
        action="append",
        default=None,
        metavar="URL",
        help="bootstrap hub URL (repeatable; env BOOTSTRAP_HUBS, comma-separated)",
    )
    hub.add_argument(
        "--hub-namespace",
        default=None,
        help=f"hub mesh namespace (default {DEFAULT_HUB_NAMESPACE}; env HUB_MESH_NAMESPACE)",
    )
    hub.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="connection cap (default 1000; env MAX_CONNECTIONS)",
    )
    hub.add_argument(
        "--hub-secret",
        default=None,
        help="closed federation: shared secret the hubs prove to each other (env HUB_SECRET)",
    )
    hub.add_argument(
        "--hub-peer-id", default=None, help="this hub's 40-hex ID on other hubs (default: random)"
    )
    hub.add_argument(
        "--reconnect-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="base of the capped, jittered backoff between bootstrap redials (default 5)",
    )
    hub.add_argument(
        "--discovery-k",
        type=int,
        default=None,
        help="answer announces with only the k XOR-closest peers (default: all, as JS)",
    )

    peer = sub.add_parser(
        "peer",
        help="an interactive mesh peer: prints events, reads commands from stdin",
        description="Join the mesh through the hub at URL; type help for the commands.",
    )
    peer.add_argument("url", metavar="URL", help="the hub, e.g. ws://127.0.0.1:3000")
    peer.add_argument("--network", default="global", help="network name (default global)")
    peer.add_argument("--peer-id", default=None, help="this peer's 40-hex ID (default: random)")
    peer.add_argument("--max-peers", type=int, default=3, help="links at most (default 3)")
    peer.add_argument("--min-peers", type=int, default=2, help="links to keep at least (default 2)")
    peer.add_argument(
        "--loopback", action="store_true", help="gather ICE candidates on 127.0.0.1 only"
    )

    demo = sub.add_parser("demo", help="start a local hub and peers on loopback and show them")
    demo.add_argument("--peers", type=int, default=4, help="number of peers (default 4)")
    demo.add_argument(
        "--keep-running", action="store_true", help="keep running until Ctrl-C instead of exiting"
    )
    _add_sim(sub)
    _add_transfer(sub)
    return parser


def _add_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from peerpigeon.sim_cli import add_sim_parser

    add_sim_parser(sub)


def _add_transfer(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from peerpigeon.transfer_cli import add_transfer_parsers

    add_transfer_parsers(sub)


def _hub_config(args: argparse.Namespace) -> tuple[ServerConfig, list[str]]:
    host = args.host or os.environ.get("HOST") or "127.0.0.1"
    port = args.port if args.port is not None else _env_int("PORT", 3000)
    max_connections = (
        args.max_connections
        if args.max_connections is not None
        else _env_int("MAX_CONNECTIONS", 1000)
    )
    namespace = args.hub_namespace or os.environ.get("HUB_MESH_NAMESPACE") or DEFAULT_HUB_NAMESPACE
    if args.bootstrap is not None:
        bootstrap = list(args.bootstrap)
    else:
        bootstrap = [
            u.strip() for u in os.environ.get("BOOTSTRAP_HUBS", "").split(",") if u.strip()
        ]
    secret = args.hub_secret or os.environ.get("HUB_SECRET") or None
    config = ServerConfig(
        max_connections=max_connections,
        host=host,
        port=port,
        is_hub=bool(args.hub),
        hub_mesh_namespace=namespace,
        discovery_k=args.discovery_k,
        bootstrap_hubs=tuple(bootstrap) if args.hub else (),
        hub_secret=secret,
        hub_peer_id=args.hub_peer_id,
    )
    if args.reconnect_interval is not None:
        config = replace(config, reconnect_interval_s=args.reconnect_interval)
    return config, bootstrap


def _event_loop_options() -> dict[str, object]:
    """anyio's asyncio options: uvloop's event loop when it is installed (a few % faster)."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}


async def _run_hub(args: argparse.Namespace) -> int:
    from peerpigeon.io.hub import PeerPigeonServer

    config, bootstrap = _hub_config(args)
    server = PeerPigeonServer(host=config.host, port=config.port, config=config)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with server:
            kind = "hub" if config.is_hub else "signaling server"
            print(f"peerpigeon {kind} listening on {server.url}", flush=True)
            if bootstrap and not config.is_hub:
                print("note: --bootstrap is used only with --hub", file=sys.stderr, flush=True)
            async for _ in signals:
                break
    print("peerpigeon hub stopped", flush=True)
    return 0


def _run_peer(args: argparse.Namespace) -> int:
    from peerpigeon.peer_cli import PeerOptions, run

    try:
        return run(
            PeerOptions(
                url=args.url,
                network=args.network,
                peer_id=args.peer_id,
                max_peers=args.max_peers,
                min_peers=args.min_peers,
                loopback=args.loopback,
            )
        )
    except ConfigError as err:
        print(f"peerpigeon peer: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peerpigeon`` console script."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "hub":
            try:
                return anyio.run(_run_hub, args, backend_options=_event_loop_options())
            except ConfigError as err:
                print(f"peerpigeon hub: {err}", file=sys.stderr)
                return 2
        if args.command == "peer":
            return _run_peer(args)
        if args.command == "sim":
            from peerpigeon.sim_cli import run_sim

            return run_sim(args)
        if args.command in ("send", "receive"):
            from peerpigeon.transfer_cli import run_transfer

            return run_transfer(args)
        if args.command == "demo":
            from peerpigeon.demo import run_demo

            code: int = anyio.run(run_demo, args.peers, args.keep_running)
            return code
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        print(f"peerpigeon: {err}", file=sys.stderr)
        return 1
    return 2
