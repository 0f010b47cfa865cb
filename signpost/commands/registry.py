"""``signpost registry``: list, add and remove authorities in the broker's registry file.

A running broker reloads the file by itself; this module only edits it, with
the same checks the broker applies when loading, and must never leave behind
an entry the broker would refuse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(registry: argparse.ArgumentParser) -> None:
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    reg_list = registry_commands.add_parser("list", help="show the authorities")
    reg_add = registry_commands.add_parser("add", help="add an authority's node")
    reg_add.add_argument("--code", required=True)
    reg_add.add_argument("--name", required=True)
    reg_add.add_argument("--address", required=True, help="host:port of the node's gRPC server")
    reg_add.add_argument("--identity", help="TLS name its certificate carries (default <code>.node.signpost.internal)")
    reg_remove = registry_commands.add_parser("remove", help="stop asking an authority")
    reg_remove.add_argument("--code", required=True)
    for sub in (reg_list, reg_add, reg_remove):
        sub.add_argument("--file", required=True, help="the registry JSON file (broker config key 'registry')")


def run(args: argparse.Namespace) -> int:
    from broker.registry import Authority, load_registry, parse_authorities, save_registry
    from certs.identity import node_dns_name

    path = Path(args.file)
    current = load_registry(path) if path.exists() or args.registry_command != "add" else ()
    if args.registry_command == "list":
        for a in current:
            print(f"{a.code:<20} {a.name:<30} {a.address:<30} {a.identity}")
        print(f"{len(current)} authorities")
        return 0
    if args.registry_command == "remove":
        if args.code not in {a.code for a in current}:
            print(f"error: {args.code} is not in {path}", file=sys.stderr)
            return 1
        save_registry(path, tuple(a for a in current if a.code != args.code))
        print(f"removed {args.code}; a running broker drops it within its reload interval")
        return 0
    if args.code in {a.code for a in current}:
        print(f"error: {args.code} is already in {path}; remove it first to change it", file=sys.stderr)
        return 1
    added = Authority(args.code, args.name, args.address, args.identity or node_dns_name(args.code))
    parse_authorities({"authorities": [vars(added)]}, "the new entry")  # the same checks as loading
    save_registry(path, (*current, added))
    print(f"added {args.code}; a running broker starts asking it within its reload interval")
    return 0
