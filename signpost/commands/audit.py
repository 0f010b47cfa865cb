"""``signpost audit``: verify the audit log, and compute the subject hashes auditors look a child up by.

The checking is in :mod:`broker.audit.verify` and the hashing in
:mod:`broker.audit.keys`; this module must never print the names or dates it
is given, only the hashes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(audit: argparse.ArgumentParser) -> None:
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check every entry, signature and tree head; exit 1 naming the first bad entry"
    )
    verify.add_argument("--db", required=True, help="audit SQLite file or postgresql:// URL (?schema=NAME)")
    verify.add_argument("--public-key", required=True, help="the log's Ed25519 public key (audit.pub.pem)")
    verify.add_argument(
        "--checkpoint",
        help="a signed tree head saved earlier (GET /v1/audit/checkpoint): detects truncation and rewritten history",
    )
    subject = audit_commands.add_parser(
        "subject-hash", help="the hashes to look a child up by (GET /v1/audit/entries?subject_hash=)"
    )
    subject.add_argument("--key", required=True, help="the subject HMAC key file (subject.key)")
    subject.add_argument("--given")
    subject.add_argument("--family")
    subject.add_argument("--dob", help="YYYY-MM-DD")
    subject.add_argument("--nhs")


def run(args: argparse.Namespace) -> int:
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
    key = load_or_create_hmac_key(key_path)
    names = {"given_name": args.given or "", "family_name": args.family or ""}
    digests = subject_hashes(key, **names, date_of_birth=args.dob, nhs_number=args.nhs)
    # A search made without the date of birth (names and home) carries the names' hash alone.
    digests += subject_hashes(key, **names, date_of_birth=None) if args.dob else []
    for digest in dict.fromkeys(digests):
        print(digest)
    return 0
