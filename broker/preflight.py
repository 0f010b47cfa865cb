"""Every file the broker is configured to use, and what each must hold: checked before it starts.

``signpost broker serve`` passes these to :func:`core.files.check_files`, so a
missing or unusable file is one sentence naming the config key, not a
traceback from inside ``ssl``, ``grpc`` or the audit log. The audit keys may be
missing with a SQLite log (one broker creates them on first start), never with
a PostgreSQL log: replicas each creating their own would sign tree heads with
different keys and hash children's identifiers differently, so every replica
must be given the same pair (``signpost certs init-deployment`` makes them).
"""

from __future__ import annotations

import json
from pathlib import Path

from broker.audit.keys import HMAC_KEY_BYTES, public_key_path
from broker.config import BrokerConfig
from broker.registry import parse_authorities
from certs.checks import ed25519_private, ed25519_public, tls_requirements
from core.config import ConfigError
from core.files import Check, CreatableFile, FileProblem, ReadableFile, Requirement


def requirements(config: BrokerConfig) -> list[Requirement]:
    """In the order a reader would fix them: TLS first, then what the broker signs and logs with."""
    shared_log = config.audit_log.startswith(("postgresql://", "postgres://"))
    audit_file = ReadableFile if shared_log else CreatableFile
    signing_pub = public_key_path(config.audit_signing_key)
    log: list[Requirement] = [] if shared_log else [CreatableFile("audit_log", Path(config.audit_log))]
    return [
        *tls_requirements(config.tls),
        ReadableFile("registry", config.registry, "a registry (JSON)", _registry(config.registry)),
        ReadableFile("assertion_key", config.assertion_key, "an Ed25519 private key (PEM)", ed25519_private),
        audit_file("audit_signing_key", config.audit_signing_key, "an Ed25519 private key (PEM)", ed25519_private),
        # Checked beside its key: a stale public half makes every honest tree head look forged.
        CreatableFile("audit_signing_key (public half)", signing_pub, "an Ed25519 public key (PEM)", ed25519_public),
        audit_file("subject_key", config.subject_key, f"a {HMAC_KEY_BYTES}-byte key in hex", _hmac_key),
        *log,
    ]


def _registry(path: Path) -> Check:
    def check(data: bytes) -> None:
        try:
            parse_authorities(json.loads(data), str(path))
        except ConfigError as exc:
            raise FileProblem(f"is not a valid registry ({str(exc).removeprefix(f'{path}: ')})") from None

    return check


def _hmac_key(data: bytes) -> None:
    if len(bytes.fromhex(data.decode("ascii").strip())) != HMAC_KEY_BYTES:
        raise FileProblem(f"is not a {HMAC_KEY_BYTES}-byte key in hex")
