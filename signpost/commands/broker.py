"""``signpost broker serve``: the federation broker, configured from its TOML file and the environment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(broker_parser: argparse.ArgumentParser) -> None:
    broker_commands = broker_parser.add_subparsers(dest="broker_command", required=True)
    bserve = broker_commands.add_parser("serve", help="serve the HTTPS API and fan out to nodes")
    bserve.add_argument("--config", required=True)


def run(args: argparse.Namespace) -> int:
    from broker import preflight
    from broker.config import load_broker_config
    from broker.server import serve_forever
    from core.files import check_files
    from core.lifecycle import run_service
    from core.logs import capture_native_stderr, configure

    config = load_broker_config(Path(args.config), os.environ)
    check_files(preflight.requirements(config))  # a StartupError is one sentence (signpost.cli prints it)
    configure(config.log_level)
    capture_native_stderr()  # gRPC's C core writes to descriptor 2: make its lines JSON too
    return run_service(serve_forever(config))
