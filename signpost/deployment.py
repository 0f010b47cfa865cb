"""Every file a Signpost deployment needs, made in one go: ``signpost certs init-deployment``.

The names are the ones deploy/compose.yaml mounts, deploy/k8s's Secrets are
made from (deploy/README.md) and deploy/config/*.toml point at, so the deploy
files start from this command's output as it is (tests/deploy checks both)::

    DIR/ca.pem                     the federation CA certificate          broker, nodes
    DIR/crl.pem                    its revocation list, signed, empty     broker, nodes
    DIR/broker.pem, broker.key     the broker's certificate               broker
    DIR/node-<CODE>.pem, .key      one per authority                      that authority's node
    DIR/assertion.key              signs every query the broker sends     broker
    DIR/assertion.pub              its public half                        nodes
    DIR/audit.key                  signs the audit log's tree heads       broker (every replica)
    DIR/audit.pub.pem              its public half                        auditors (signpost audit verify)
    DIR/subject.key                HMAC key for children's identifiers    broker (every replica), auditors
    CA_DIR/ca.pem, ca.key          the CA itself: keep it off the servers

An existing CA in CA_DIR is used, not replaced (``signpost certs init --force``
replaces a CA). Keys already in DIR are never overwritten without ``force``:
a replaced audit or subject key orphans every entry already logged under it.
This module must never print a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.audit.keys import load_or_create_hmac_key, load_or_create_signing_key, public_key_path
from certs.assertions import create_assertion_key
from certs.pki import CertificateAuthority, broker_subject, node_subject
from certs.revocation import revoked_serials, write_crl


class KeysExist(Exception):
    """Keys are already in the directory and ``force`` was not given."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__(", ".join(str(p) for p in paths))
        self.paths = tuple(paths)


@dataclass(frozen=True)
class Deployment:
    """What to make: the broker's names and addresses and the authorities that run nodes."""

    directory: Path
    ca_dir: Path
    authorities: tuple[tuple[str, str], ...] = ()
    """(code, name) of each authority, e.g. ("LEEDS", "Leeds")."""
    hostnames: tuple[str, ...] = ("localhost",)
    """DNS names practitioners (and the compose healthcheck) use for the broker."""
    ips: tuple[str, ...] = ("127.0.0.1",)
    ca_name: str = "Signpost Federation CA"

    def key_files(self) -> list[Path]:
        """Every private key this writes in ``directory`` (the CA's key is in ``ca_dir``)."""
        names = ["broker.key", *(f"node-{code}.key" for code, _ in self.authorities)]
        names += ["assertion.key", "audit.key", "subject.key"]
        return [self.directory / n for n in names]


@dataclass(frozen=True)
class Made:
    ca_created: bool
    files: tuple[Path, ...]


def init_deployment(plan: Deployment, *, force: bool = False) -> Made:
    """Write every file of ``plan``; raise KeysExist (before writing anything) if keys exist and not ``force``."""
    existing = [k for k in plan.key_files() if k.exists()]
    if existing and not force:
        raise KeysExist(existing)
    for key in existing:
        key.unlink()  # the audit and subject key writers never replace a file: make room for them
    public_key_path(plan.directory / "audit.key").unlink(missing_ok=True)
    ca, ca_created = _ca(plan)
    directory = plan.directory
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / "ca.pem"]
    files[0].write_bytes(ca.cert_pem)
    # Kept revocations survive a re-run with the same CA; with a new CA the old list means nothing.
    serials = set() if ca_created else revoked_serials(directory / "crl.pem", ca.cert)
    files.append(write_crl(ca.key, ca.cert, serials, directory / "crl.pem"))
    issued = ca.issue_to(directory, "broker", broker_subject(hostnames=plan.hostnames, ips=plan.ips))
    files += [issued.cert, issued.key]
    for code, name in plan.authorities:
        issued = ca.issue_to(directory, f"node-{code}", node_subject(code, name))
        files += [issued.cert, issued.key]
    files += create_assertion_key(directory, "assertion")
    load_or_create_signing_key(directory / "audit.key")
    load_or_create_hmac_key(directory / "subject.key")
    files += [directory / "audit.key", public_key_path(directory / "audit.key"), directory / "subject.key"]
    return Made(ca_created, tuple(p.resolve() for p in files))


def _ca(plan: Deployment) -> tuple[CertificateAuthority, bool]:
    if (plan.ca_dir / "ca.key").exists():
        return CertificateAuthority.load(plan.ca_dir), False
    ca = CertificateAuthority.create(plan.ca_name)
    ca.save(plan.ca_dir)
    return ca, True
