"""``signpost certs``: create the federation CA, issue certificates and keys, revoke certificates.

The cryptography is in :mod:`certs.pki`, :mod:`certs.assertions` and
:mod:`certs.revocation`; this module only turns arguments into calls and says
where the files went. It must never print a private key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certs.identity import Role


def add_arguments(certs: argparse.ArgumentParser) -> None:
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
    crl = certs_commands.add_parser("crl", help="sign crl.pem afresh (empty if there is none), keeping its revocations")
    _add_deployment_arguments(certs_commands)
    for sub in (init, broker, node, user, assertion, revoke, crl):
        sub.add_argument("--dir", required=True, help="directory for the certificate and key")
        sub.add_argument("--out", help="file stem (default: derived from the subject)")
        sub.add_argument("--ca-dir", help="directory holding ca.pem and ca.key (default: --dir)")


def _add_deployment_arguments(certs_commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    deployment = certs_commands.add_parser(
        "init-deployment",
        help="every file the broker and nodes need: certificates, CRL, assertion, audit and subject keys",
        description="Writes the files deploy/compose.yaml, deploy/k8s and deploy/config expect (deploy/README.md). "
        "Uses the CA in --ca-dir, creating it there if there is none.",
    )
    deployment.add_argument("--dir", required=True, help="where the deployment's files go (e.g. deploy/certs)")
    deployment.add_argument("--ca-dir", required=True, help="the CA's ca.pem and ca.key; keep it off the servers")
    deployment.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="CODE=NAME",
        help="an authority's node, e.g. LEEDS=Leeds (repeat)",
    )
    deployment.add_argument("--hostname", action="append", default=[], help="DNS name clients use for the broker")
    deployment.add_argument("--ip", action="append", default=[], help="IP address clients use for the broker")
    deployment.add_argument("--force", action="store_true", help="replace keys already in --dir")


def run(args: argparse.Namespace) -> int:
    from certs.pki import CertificateAuthority, broker_subject, node_subject, user_subject

    if args.certs_command == "init-deployment":
        return _init_deployment(args)
    directory = Path(args.dir)
    if args.certs_command == "crl":
        return _revoke(args, directory, allow_none=True)
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


def _init_deployment(args: argparse.Namespace) -> int:
    from signpost.deployment import Deployment, KeysExist, init_deployment

    authorities = []
    for item in args.node:
        code, sep, name = item.partition("=")
        if not sep or not code or not name:
            print(f"error: --node {item!r} must be CODE=NAME, e.g. LEEDS=Leeds", file=sys.stderr)
            return 2
        authorities.append((code, name))
    plan = Deployment(
        Path(args.dir),
        Path(args.ca_dir),
        tuple(authorities),
        hostnames=tuple(dict.fromkeys(["localhost", *args.hostname])),
        ips=tuple(dict.fromkeys(["127.0.0.1", *args.ip])),
    )
    try:
        made = init_deployment(plan, force=args.force)
    except KeysExist as exc:
        print(f"error: keys exist ({exc}); pass --force to replace them", file=sys.stderr)
        return 1
    except ValueError as exc:  # an authority code the certificates cannot carry
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ca = "created" if made.ca_created else "used"
    print(f"CA {ca}: {Path(args.ca_dir) / 'ca.pem'} (keep {Path(args.ca_dir) / 'ca.key'} off the servers)")
    for path in made.files:
        print(f"{path}{' (0600)' if path.suffix == '.key' else ''}")
    return 0


def _revoke(args: argparse.Namespace, directory: Path, *, allow_none: bool = False) -> int:
    from cryptography import x509

    from certs.pki import CertificateAuthority
    from certs.revocation import revoked_serials, write_crl

    ca = CertificateAuthority.load(Path(args.ca_dir or directory))
    serials = {int(s, 16) for s in getattr(args, "serial", [])}
    serials |= {x509.load_pem_x509_certificate(Path(c).read_bytes()).serial_number for c in getattr(args, "cert", [])}
    if not serials and not allow_none:
        print("error: name a certificate (--cert FILE) or a serial number (--serial HEX) to revoke", file=sys.stderr)
        return 2
    crl = directory / "crl.pem"
    all_serials = revoked_serials(crl, ca.cert) | serials
    write_crl(ca.key, ca.cert, all_serials, crl)
    print(f"{crl}: {len(all_serials)} certificate(s) revoked; copy it to the broker and every node")
    return 0
