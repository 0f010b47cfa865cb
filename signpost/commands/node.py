"""``signpost node``: an authority's node agent — import records, check its database source, serve, read its journal.

Run on the authority's own host by its staff. Configuration is loaded here with
``os.environ`` passed in; the work is in :mod:`node.importer`, :mod:`node.source`, :mod:`node.server`
and :mod:`node.journal`; this module must never open the store or the journal
in any other way than those modules do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from node.config import NodeConfig

if TYPE_CHECKING:
    from node.importer import ImportReport


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
    check = node_commands.add_parser(
        "check-source", help="connect to the [source] database read-only and check the mapping and the rows"
    )
    check.add_argument("--config", required=True, help="a node TOML; only its [source] tables are read")
    check.add_argument("--show", type=int, default=20, help="how many rejected rows to list (default 20)")


def run(args: argparse.Namespace) -> int:
    from node.config import load_node_config
    from node.errors import NodeError

    if args.node_command == "check-source":
        return check_source(Path(args.config), show=args.show)
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
        report = import_csv(store, Path(args.csv), replace_all=args.replace, ended_before=_cutoff(config))
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
    _print_expired(report, config.disclose_ended_years)
    return 3 if report.rows_rejected else 0


def _cutoff(config: NodeConfig) -> str:
    import datetime as dt

    from node.policy import disclosure_cutoff

    if config.disclose_ended_years is None:
        return ""
    return disclosure_cutoff(dt.datetime.now(dt.UTC).date(), config.disclose_ended_years)


def _print_expired(report: ImportReport, years: int | None) -> None:
    """Expired rows are not errors (the exit status ignores them), but an authority should know they went."""
    if report.rows_expired:
        print(
            f"{report.rows_expired} of the accepted rows ended more than {years} years ago and are not served "
            f"([retention] disclose_ended_years); {report.records_expired} records had nothing left"
        )


def check_source(path: Path, *, show: int) -> int:
    """The first thing an authority's IT team runs: exit 0 all rows good, 3 some rejected, 1 unusable.

    Prints the URL without its password, counts, and the first rejected rows by row number, record id,
    column and reason; never a value from a row.
    """
    import datetime as dt

    from core.config import ConfigError
    from node.config import load_disclose_ended_years, load_source_config
    from node.errors import SourceError
    from node.importer import count_expired
    from node.policy import disclosure_cutoff
    from node.source import engine_url, read_source

    try:
        config = load_source_config(path, os.environ)
        years = load_disclose_ended_years(path, os.environ)
        print(f"source: {engine_url(config).render_as_string(hide_password=True)} (read-only)")
        read = read_source(config)
    except (ConfigError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = read.report
    count_expired(report, read.records, disclosure_cutoff(dt.datetime.now(dt.UTC).date(), years))
    print(f"columns: the query returns {len(read.columns)}; every mapped column is among them")
    for error in report.errors[:show]:
        key = f" (record_id {error.key})" if error.key else ""
        print(f"row {error.line}{key}: {error.reason}")
    if report.rows_rejected > show:
        print(f"... and {report.rows_rejected - show} more rejected rows")
    print(
        f"rows: {read.rows_read} read, {report.rows_loaded} accepted ({report.records_loaded} records), "
        f"{report.rows_rejected} rejected"
    )
    _print_expired(report, years)
    if read.rows_read == 0:
        print("error: source.query: the query returns no rows; a node would serve nothing", file=sys.stderr)
        return 1
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
