"""The ``signpost`` command (contract section 1).

The parser is assembled here from the command modules in :mod:`signpost.commands`:
each declares its own arguments and does its own hand-over, and this module
only lists them in the order ``signpost --help`` shows and dispatches. It must
never grow a command's arguments or work itself. Exit codes: 0 success, 1
failure (the message names the problem), 2 usage error, 3 import finished with
some rows rejected (the good rows were kept).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import __version__
from core.config import ConfigError
from signpost.commands import Command, audit, bench, broker, certs, demo, node, registry, synth

COMMANDS: tuple[Command, ...] = (
    Command("demo", "run a complete local federation", demo.add_arguments, demo.run),
    Command("certs", "create a federation CA and issue certificates", certs.add_arguments, certs.run),
    Command("node", "an authority's node agent", node.add_arguments, node.run),
    Command("broker", "the federation broker", broker.add_arguments, broker.run),
    Command("synth", "write synthetic records CSVs with ground truth", synth.add_arguments, synth.run),
    Command(
        "registry", "the broker's list of authorities (reloaded while running)", registry.add_arguments, registry.run
    ),
    Command("audit", "check the audit log; compute subject hashes for auditors", audit.add_arguments, audit.run),
    Command("bench", "benchmarks that print figures and write JSON", bench.add_arguments, bench.run),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signpost", description="Signpost: federated record location.")
    parser.add_argument("--version", action="version", version=f"signpost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
