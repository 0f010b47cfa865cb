"""A complete federation on one machine: CA, certificates, node stores, nodes and broker.

Used by ``signpost demo`` and by the test harness, so the tests exercise the
same start-up path a newcomer runs. Everything is real: certificates from
``cryptography``, gRPC servers with mTLS on loopback ports, the broker's HTTPS
API. Nothing here is meant for production deployment (see ``deploy/``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from broker.app import create_app
from broker.audit.keys import public_key_path
from broker.config import BrokerConfig
from broker.door import DoorLimits
from broker.patterns import OFF as PATTERNS_OFF
from broker.patterns import PatternSettings
from broker.portal.config import PortalConfig
from broker.registry import Authority, save_registry
from broker.server import RunningBroker, start_broker
from certs.assertions import create_assertion_key
from certs.identity import Role, node_dns_name
from certs.pki import CertificateAuthority, IssuedFiles, broker_subject, node_subject, user_subject
from certs.revocation import revoked_serials, write_crl
from certs.tls import TLSConfig
from node.config import NodeConfig
from node.importer import ImportReport, import_csv
from node.policy import FrontDoor
from node.server import RunningNode, start_node
from node.store import RecordStore

DEMO_USERS = {
    Role.PRACTITIONER: ("practitioner", "Pat Practitioner", "Leeds City Council", "pat.practitioner@leeds.example"),
    Role.AUDITOR: ("auditor", "Alex Auditor", "Signpost Audit", "alex.auditor@signpost.example"),
    Role.OPERATOR: ("operator", "Olu Operator", "Signpost Operations", "olu.operator@signpost.example"),
    # A node-admin's id names the authority they administer: <user>@<CODE>.
    Role.NODE_ADMIN: ("nia@LEEDS", "Nia Admin", "Leeds City Council", "nia.admin@leeds.example"),
}


@dataclass(frozen=True)
class Pki:
    """Paths of a federation's CA and every certificate issued for the local federation."""

    directory: Path
    ca: IssuedFiles
    broker: IssuedFiles
    nodes: dict[str, IssuedFiles]
    users: dict[Role, IssuedFiles]
    assertion_key: Path
    """The broker's Ed25519 signing key for query assertions."""
    assertion_pub: Path
    crl: Path
    """The CA's revocation list (empty at first)."""

    def tls(self, files: IssuedFiles) -> TLSConfig:
        return TLSConfig(ca=self.ca.cert, cert=files.cert, key=files.key, crl=self.crl)

    def revoke(self, *serials: int) -> None:
        """Add serials to the CRL, as ``signpost certs revoke`` does."""
        ca = CertificateAuthority.load(self.directory)
        write_crl(ca.key, ca.cert, revoked_serials(self.crl, ca.cert) | set(serials), self.crl)


def create_pki(directory: Path, authorities: Sequence[tuple[str, str]]) -> Pki:
    """A new CA with broker, node and user certificates, written under ``directory``."""
    ca = CertificateAuthority.create()
    ca_files = ca.save(directory)
    nodes = {code: ca.issue_to(directory, f"node-{code}", node_subject(code, name)) for code, name in authorities}
    users = {
        role: ca.issue_to(directory, role.value, user_subject(role, uid, name, org, email))
        for role, (uid, name, org, email) in DEMO_USERS.items()
    }
    assertion_key, assertion_pub = create_assertion_key(directory)
    crl = write_crl(ca.key, ca.cert, set(), directory / "crl.pem")
    return Pki(
        directory,
        ca_files,
        ca.issue_to(directory, "broker", broker_subject()),
        nodes,
        users,
        assertion_key,
        assertion_pub,
        crl,
    )


@dataclass
class LocalFederation:
    """A running federation; ``stop()`` shuts everything down."""

    pki: Pki
    nodes: list[RunningNode]
    broker: RunningBroker
    broker_config: BrokerConfig
    imports: dict[str, ImportReport] = field(default_factory=dict)

    @property
    def broker_url(self) -> str:
        return f"https://127.0.0.1:{self.broker.port}"

    @property
    def portal_url(self) -> str | None:
        """The practitioners' portal, when the broker signs people in to it (``[portal]``)."""
        return f"{self.broker_url}/portal" if self.broker_config.portal is not None else None

    def description(
        self, names: dict[str, str], demo_users: dict[str, dict[str, str]] | None = None
    ) -> dict[str, object]:
        """The contract's federation.json; ``portal_url`` and ``demo_users`` only when the portal signs people in."""
        portal: dict[str, object] = {}
        if self.portal_url is not None:
            portal = {"portal_url": self.portal_url, "demo_users": demo_users or {}}
        return {
            "broker_url": self.broker_url,
            "ca": str(self.pki.ca.cert),
            "users": {r.value: {"cert": str(f.cert), "key": str(f.key)} for r, f in self.pki.users.items()},
            "audit": {
                "db": self.broker_config.audit_log,
                "public_key": str(public_key_path(self.broker_config.audit_signing_key)),
                "subject_key": str(self.broker_config.subject_key),
            },
            "authorities": [
                {
                    "code": n.config.code,
                    "name": names[n.config.code],
                    "grpc": n.address,
                    "records": n.service.matcher.size,
                }
                for n in self.nodes
            ],
        } | portal

    async def stop(self) -> None:
        await self.broker.stop()
        for node in self.nodes:
            await node.stop(grace=0.5)


def local_front_door(code: str) -> FrontDoor:
    """A plausible, fictional front door for a local authority: what its ``possible`` answers give.

    The number is in Ofcom's range kept for drama (0306 999 0000-0999), so it rings nobody; the
    mailbox is at a reserved ``.example`` domain.
    """
    return FrontDoor(
        service="Children's Services Front Door",
        team="Duty and Advice Team",
        phone=f"0306 999 0{zlib.crc32(code.encode()) % 1000:03}",
        email=f"frontdoor@{code.lower()}.example",
    )


def import_authority(store_path: Path, csv_path: Path) -> ImportReport:
    store = RecordStore(store_path)
    try:
        return import_csv(store, csv_path)
    finally:
        store.close()


async def start_local_federation(
    workdir: Path,
    authorities: Sequence[tuple[str, str, Path]],
    *,
    broker_port: int = 0,
    rate_limit_per_minute: int = 30,
    search_deadline_seconds: float = 2.0,
    portal: PortalConfig | None = None,
) -> LocalFederation:
    """Build PKI, import each authority's CSV, start its node on a free port, then the broker (whose
    portal signs people in through ``portal``'s identity providers, if given)."""
    pki = create_pki(workdir / "pki", [(code, name) for code, name, _ in authorities])
    nodes: list[RunningNode] = []
    imports: dict[str, ImportReport] = {}
    try:
        for code, name, csv_path in authorities:
            store = workdir / "stores" / f"{code}.sqlite3"
            store.unlink(missing_ok=True)  # the demo always starts from the given CSVs
            imports[code] = import_authority(store, csv_path)
            config = NodeConfig(
                code=code,
                name=name,
                listen=("127.0.0.1", 0),
                store=store,
                tls=pki.tls(pki.nodes[code]),
                broker_public_keys=(pki.assertion_pub,),
                front_door=local_front_door(code),
            )
            nodes.append(await start_node(config))
        registry = workdir / "registry.json"
        save_registry(
            registry,
            tuple(Authority(n.config.code, n.config.name, n.address, node_dns_name(n.config.code)) for n in nodes),
        )
        broker_config = BrokerConfig(
            listen=("127.0.0.1", broker_port),
            registry=registry,
            tls=pki.tls(pki.broker),
            assertion_key=pki.assertion_key,
            rate_limit_per_minute=rate_limit_per_minute,
            search_deadline_seconds=search_deadline_seconds,
            # --rate-limit 0 means bulk evaluation on one's own machine: no daily limit either.
            rate_limit_per_day=0 if rate_limit_per_minute == 0 else 300,
            alert_searches_per_hour=0 if rate_limit_per_minute == 0 else 60,
            org_rate_limit_per_minute=0 if rate_limit_per_minute == 0 else BrokerConfig.org_rate_limit_per_minute,
            org_rate_limit_per_day=0 if rate_limit_per_minute == 0 else BrokerConfig.org_rate_limit_per_day,
            patterns=PATTERNS_OFF if rate_limit_per_minute == 0 else PatternSettings(),
            # The audit log and its keys outlive a demo run (the PKI does not): restart and verify.
            audit_log=str(workdir / "audit.sqlite3"),
            audit_signing_key=workdir / "audit.key",
            subject_key=workdir / "subject.key",
            # Bulk evaluation comes from one address (this machine): no per-address limits either.
            preauth_burst=0 if rate_limit_per_minute == 0 else BrokerConfig.preauth_burst,
            limits=DoorLimits(max_connections_per_address=768) if rate_limit_per_minute == 0 else DoorLimits(),
            portal=portal,
        )
        broker = await start_broker(broker_config, create_app(broker_config))
    except BaseException:
        for node in nodes:
            await node.stop(grace=0)
        raise
    return LocalFederation(pki, nodes, broker, broker_config, imports)


def write_description(
    path: Path, federation: LocalFederation, names: dict[str, str], demo_users: dict[str, dict[str, str]] | None = None
) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(federation.description(names, demo_users), indent=2) + "\n")
    tmp.chmod(0o600)  # it may hold the demo users' password
    tmp.replace(path)
