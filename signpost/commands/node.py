"""``signpost node``: an authority's node agent — import records, serve, and read its journal.

Run on the authority's own host by its staff. Configuration is loaded here with
``os.environ`` passed in; the work is in :mod:`node.importer`, :mod:`node.server`
and :mod:`node.journal`; this module must never open the store or the journal
in any other way than those modules do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from node.config import NodeConfig


def add_arguments(node_parser: argparse.ArgumentParser) -> None:
    node_commands = node_parser.add_subparsers(dest="node_command", required=True)
    imp = node_commands.add_parser("import", help="load a records CSV into the node's store")
    imp.add_argument("--config", required=True)
    imp.add_argument("--csv", required=True)
    imp.add_argument("--replace", action="store_true", help="drop records not in this file (full snapshot)")
    serve = node_commands.add_parser("serve", help="serve the node over gRPC with mTLS")
    serve.add_argument("--config", required=True)
    alerts = node_commands.add_parser("alerts", help="searches that found a shielded child (safeguarding officer)")
    alerts.add_argument("--config", required=True)
    alerts.add_argument("--all", action="store_true", help="include acknowledged alerts")
    alerts.add_argument("--ack", type=int, help="acknowledge this alert id")
    alerts.add_argument("--by", default="node-admin", help="who acknowledges (with --ack)")
    access = node_commands.add_parser("access-log", help="searches that matched this authority's records")
    access.add_argument("--config", required=True)
    access.add_argument("--since", default="", help="RFC 3339 time")


def run(args: argparse.Namespace) -> int:
    from node.config import load_node_config
    from node.errors import NodeError

    config = load_node_config(Path(args.config), os.environ)
    if args.node_command in ("alerts", "access-log"):
        return _journal(args, config)
    if args.node_command == "serve":
        from core.files import check_files
        from core.lifecycle import run_service
        from core.logs import capture_native_stderr, configure
        from node import preflight
        from node.server import serve_forever

        check_files(preflight.requirements(config))  # a StartupError is one sentence (signpost.cli prints it)
        configure(config.log_level)
        capture_native_stderr()  # gRPC's C core writes to descriptor 2: make its lines JSON too
        return run_service(serve_forever(config))
    from node.importer import import_csv
    from node.store import RecordStore

    store = RecordStore(config.store)
    try:
        report = import_csv(store, Path(args.csv), replace_all=args.replace)
    except NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for error in report.errors:
        print(f"line {error.line}: {error.reason}")
    print(
        f"{config.code}: {report.rows_loaded} rows loaded ({report.records_loaded} records), "
        f"{report.rows_rejected} rows rejected"
    )
    return 3 if report.rows_rejected else 0


def _journal(args: argparse.Namespace, config: NodeConfig) -> int:
    """The node's journal, read on the node's own host by the authority's staff."""
    from node.journal import Journal

    journal = Journal(config.journal)
    try:
        if args.node_command == "alerts" and args.ack is not None:
            done = journal.acknowledge(args.ack, args.by)
            print(f"alert {args.ack} acknowledged by {args.by}" if done else f"no unacknowledged alert {args.ack}")
            return 0 if done else 1
        rows = (
            journal.alerts(include_acknowledged=args.all)
            if args.node_command == "alerts"
            else journal.access_log(since=args.since)
        )
    finally:
        journal.close()
    for r in rows:
        seen = f" acknowledged {r.acknowledged_at} by {r.acknowledged_by}" if r.acknowledged_at else ""
        print(
            f"#{r.id} {r.time} {r.kind} record {r.record_id} ({r.band}) searched by {r.requester_name} "
            f"<{r.requester_email}>, {r.requester_role}, {r.requester_organisation}; purpose "
            f"{r.purpose_code}: {r.justification}{seen}"
        )
    print(f"{len(rows)} {'alerts' if args.node_command == 'alerts' else 'searches that matched'}")
    return 0
