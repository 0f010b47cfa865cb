"""The ``signpost`` command (contract section 1).

Each subcommand parses its arguments here and hands over to the module that
does the work; configuration is loaded once, here, with ``os.environ`` passed
in, so no other module reads the environment. Exit codes: 0 success, 1 failure
(the message names the problem), 2 usage error, 3 import finished with some
rows rejected (the good rows were kept).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from certs.identity import Role
from node.config import NodeConfig
from core import __version__
from core.config import ConfigError


def _certs(args: argparse.Namespace) -> int:
    from certs.pki import CertificateAuthority, broker_subject, node_subject, user_subject

    directory = Path(args.dir)
    if args.certs_command == "assertion-key":
        from certs.assertions import create_assertion_key

        key, pub = create_assertion_key(directory, args.out or "assertion")
        print(f"broker signing key (0600): {key}\npublic key for nodes:      {pub}")
        return 0
    if args.certs_command == "revoke":
        return _revoke(args, directory)
    if args.certs_command == "init":
        if (directory / "ca.key").exists() and not args.force:
            print(f"error: {directory / 'ca.key'} exists; pass --force to replace the federation CA", file=sys.stderr)
            return 1
        files = CertificateAuthority.create(args.name).save(directory)
        print(f"CA certificate: {files.cert}\nCA key (0600):  {files.key}")
        return 0
    ca = CertificateAuthority.load(Path(args.ca_dir or directory))
    if args.certs_command == "broker":
        subject = broker_subject(args.id, hostnames=tuple(args.hostname), ips=tuple(args.ip))
        stem = "broker"
    elif args.certs_command == "node":
        subject, stem = node_subject(args.code, args.name), f"node-{args.code}"
    else:
        subject = user_subject(Role(args.role), args.id, args.name, args.organisation, args.email)
        stem = args.id
    files = ca.issue_to(directory, args.out or stem, subject)
    print(f"certificate: {files.cert}\nkey (0600):  {files.key}")
    return 0


def _revoke(args: argparse.Namespace, directory: Path) -> int:
    from cryptography import x509

    from certs.pki import CertificateAuthority
    from certs.revocation import revoked_serials, write_crl

    ca = CertificateAuthority.load(Path(args.ca_dir or directory))
    serials = {int(s, 16) for s in args.serial}
    serials |= {x509.load_pem_x509_certificate(Path(c).read_bytes()).serial_number for c in args.cert}
    if not serials:
        print("error: name a certificate (--cert FILE) or a serial number (--serial HEX) to revoke", file=sys.stderr)
        return 2
    crl = directory / "crl.pem"
    all_serials = revoked_serials(crl, ca.cert) | serials
    write_crl(ca.key, ca.cert, all_serials, crl)
    print(f"{crl}: {len(all_serials)} certificate(s) revoked; copy it to the broker and every node")
    return 0


def _journal(args: argparse.Namespace, config: NodeConfig) -> int:
    """The node's journal, read on the node's own host by the authority's staff."""
    from node.journal import Journal

    journal = Journal(config.journal)
    try:
        if args.node_command == "alerts" and args.ack is not None:
            done = journal.acknowledge(args.ack, args.by)
            print(f"alert {args.ack} acknowledged by {args.by}" if done else f"no unacknowledged alert {args.ack}")
            return 0 if done else 1
        rows = (journal.alerts(include_acknowledged=args.all) if args.node_command == "alerts"
                else journal.access_log(since=args.since))
    finally:
        journal.close()
    for r in rows:
        seen = f" acknowledged {r.acknowledged_at} by {r.acknowledged_by}" if r.acknowledged_at else ""
        print(f"#{r.id} {r.time} {r.kind} record {r.record_id} ({r.band}) searched by {r.requester_name} "
              f"<{r.requester_email}>, {r.requester_role}, {r.requester_organisation}; purpose "
              f"{r.purpose_code}: {r.justification}{seen}")
    print(f"{len(rows)} {'alerts' if args.node_command == 'alerts' else 'searches that matched'}")
    return 0


def _node(args: argparse.Namespace) -> int:
    from node.config import load_node_config
    from node.errors import NodeError

    config = load_node_config(Path(args.config), os.environ)
    if args.node_command in ("alerts", "access-log"):
        return _journal(args, config)
    if args.node_command == "serve":
        from node.server import serve_forever
        from core.logs import configure

        configure(config.log_level)
        asyncio.run(serve_forever(config))
        return 0
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
    print(f"{config.code}: {report.rows_loaded} rows loaded ({report.records_loaded} records), "
          f"{report.rows_rejected} rows rejected")
    return 3 if report.rows_rejected else 0


def _broker(args: argparse.Namespace) -> int:
    from broker.config import load_broker_config
    from broker.server import serve_forever
    from core.logs import configure

    config = load_broker_config(Path(args.config), os.environ)
    configure(config.log_level)
    asyncio.run(serve_forever(config))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from signpost.demo import DemoOptions, run_demo

    options = DemoOptions(
        data=Path(args.data) if args.data else None, workdir=Path(args.workdir), port=args.port,
        rate_limit=args.rate_limit, check=args.check, children=args.children, seed=args.seed,
    )
    return asyncio.run(run_demo(options))


def _synth(args: argparse.Namespace) -> int:
    from signpost import synth

    return synth.run(args)


def _registry(args: argparse.Namespace) -> int:
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


def _audit(args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        from broker.audit.verify import run_verify

        code, message = run_verify(args.db, Path(args.public_key), Path(args.checkpoint) if args.checkpoint else None)
        print(message)
        return code
    from broker.audit.keys import load_or_create_hmac_key, subject_hashes

    key_path = Path(args.key)
    if not key_path.exists():
        print(f"error: {key_path}: subject key not found", file=sys.stderr)
        return 1
    for digest in subject_hashes(load_or_create_hmac_key(key_path), given_name=args.given or "",
                                 family_name=args.family or "", date_of_birth=args.dob, nhs_number=args.nhs):
        print(digest)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from signpost.bench import accuracy, floor, scale, soak, speed
    from core.logs import configure

    configure("warning")  # a benchmark prints figures; per-search logs would drown them
    runner: Callable[[argparse.Namespace], int] = {
        "accuracy": accuracy.run, "speed": speed.run, "soak": soak.run, "scale": scale.run,
        "grpc-floor": floor.run}[args.bench_command]
    return runner(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signpost", description="Signpost: federated record location.")
    parser.add_argument("--version", action="version", version=f"signpost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a complete local federation")
    demo.add_argument("--data", help="directory of <CODE>.csv records files, one per authority")
    demo.add_argument("--workdir", default="signpost-demo", help="where certificates, stores and federation.json go")
    demo.add_argument("--port", type=int, default=None, help="broker HTTPS port (default 8443; 0 = any free port)")
    demo.add_argument("--rate-limit", type=int, default=60, help="searches per practitioner per minute; 0 = off")
    demo.add_argument("--check", action="store_true", help="run sample searches, print them and exit")
    demo.add_argument("--children", type=int, default=3000, help="synthetic children (without --data)")
    demo.add_argument("--seed", type=int, default=1, help="seed for synthetic data (without --data)")
    demo.set_defaults(handler=_demo)

    certs = commands.add_parser("certs", help="create a federation CA and issue certificates")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_commands.add_parser("init", help="create the federation CA")
    init.add_argument("--name", default="Signpost Federation CA")
    init.add_argument("--force", action="store_true")
    broker = certs_commands.add_parser("broker", help="issue the broker's certificate")
    broker.add_argument("--id", default="central")
    broker.add_argument("--hostname", action="append", default=["localhost"], help="DNS name clients use (repeat)")
    broker.add_argument("--ip", action="append", default=["127.0.0.1"], help="IP address clients use (repeat)")
    node = certs_commands.add_parser("node", help="issue an authority's node certificate")
    node.add_argument("--code", required=True, help="authority code, e.g. LEEDS")
    node.add_argument("--name", required=True, help="authority name, e.g. Leeds")
    user = certs_commands.add_parser("user", help="issue a person's certificate carrying their role")
    user.add_argument("--role", required=True, choices=[r.value for r in Role if r not in (Role.BROKER, Role.NODE)])
    user.add_argument("--id", required=True, help="user id, e.g. jsmith")
    user.add_argument("--name", required=True, help="full name")
    user.add_argument("--organisation", required=True)
    user.add_argument("--email", default="")
    assertion = certs_commands.add_parser("assertion-key", help="the broker's Ed25519 query-signing key pair")
    revoke = certs_commands.add_parser("revoke", help="add certificates to the CA's revocation list (crl.pem)")
    revoke.add_argument("--cert", action="append", default=[], help="certificate file to revoke (repeat)")
    revoke.add_argument("--serial", action="append", default=[], help="serial number in hex to revoke (repeat)")
    for sub in (init, broker, node, user, assertion, revoke):
        sub.add_argument("--dir", required=True, help="directory for the certificate and key")
        sub.add_argument("--out", help="file stem (default: derived from the subject)")
        sub.add_argument("--ca-dir", help="directory holding ca.pem and ca.key (default: --dir)")
    certs.set_defaults(handler=_certs)

    node_parser = commands.add_parser("node", help="an authority's node agent")
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
    node_parser.set_defaults(handler=_node)

    broker_parser = commands.add_parser("broker", help="the federation broker")
    broker_commands = broker_parser.add_subparsers(dest="broker_command", required=True)
    bserve = broker_commands.add_parser("serve", help="serve the HTTPS API and fan out to nodes")
    bserve.add_argument("--config", required=True)
    broker_parser.set_defaults(handler=_broker)

    synth_parser = commands.add_parser("synth", help="write synthetic records CSVs with ground truth")
    from signpost import synth

    synth.add_arguments(synth_parser)
    synth_parser.set_defaults(handler=_synth)

    registry = commands.add_parser("registry", help="the broker's list of authorities (reloaded while running)")
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
    registry.set_defaults(handler=_registry)

    audit = commands.add_parser("audit", help="check the audit log; compute subject hashes for auditors")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check every entry, signature and tree head; exit 1 naming the first bad entry")
    verify.add_argument("--db", required=True, help="audit SQLite file or postgresql:// URL (?schema=NAME)")
    verify.add_argument("--public-key", required=True, help="the log's Ed25519 public key (audit.pub.pem)")
    verify.add_argument("--checkpoint", help="a signed tree head saved earlier (GET /v1/audit/checkpoint): "
                                             "detects truncation and rewritten history")
    subject = audit_commands.add_parser(
        "subject-hash", help="the hashes to look a child up by (GET /v1/audit/entries?subject_hash=)")
    subject.add_argument("--key", required=True, help="the subject HMAC key file (subject.key)")
    subject.add_argument("--given")
    subject.add_argument("--family")
    subject.add_argument("--dob", help="YYYY-MM-DD")
    subject.add_argument("--nhs")
    audit.set_defaults(handler=_audit)

    from signpost.bench import accuracy, floor, scale, soak, speed

    bench = commands.add_parser("bench", help="benchmarks that print figures and write JSON")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    accuracy.add_arguments(bench_commands.add_parser("accuracy", help="matching accuracy through a real federation"))
    speed.add_arguments(bench_commands.add_parser("speed", help="one node's index build, memory and latency"))
    soak.add_arguments(bench_commands.add_parser("soak", help="steady searches for minutes while a node flaps"))
    scale.add_arguments(bench_commands.add_parser("scale", help="N authorities, millions of records, load via HTTPS"))
    floor.add_arguments(bench_commands.add_parser("grpc-floor", help="what a bare N-way grpc.aio fan-out costs"))
    bench.set_defaults(handler=_bench)
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
