"""The registry of authorities the broker fans out to.

A JSON file the operator maintains::

    {"authorities": [
      {"code": "LEEDS", "name": "Leeds", "address": "node.leeds.example:50051",
       "identity": "leeds.node.signpost.internal"}
    ]}

``identity`` is the TLS name the node's certificate must carry; it defaults to
``<code>.node.signpost.internal``, which ``signpost certs node`` puts in every
node certificate. The broker dials ``address`` but checks ``identity``, so a
node answering at another authority's address is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from certs.identity import AUTHORITY_CODE, node_dns_name
from core.config import ConfigError


@dataclass(frozen=True)
class Authority:
    """One authority's node as the broker knows it."""

    code: str
    name: str
    address: str
    """host:port of the node's gRPC server."""
    identity: str
    """The DNS name its certificate must present."""


def parse_authorities(data: object, source: str) -> tuple[Authority, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("authorities"), list):
        raise ConfigError(f"{source}: expected an object with an 'authorities' list")
    seen: set[str] = set()
    result = []
    for i, item in enumerate(data["authorities"]):
        where = f"{source}: authorities[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object")
        code, name, address = item.get("code"), item.get("name"), item.get("address")
        if not isinstance(code, str) or not AUTHORITY_CODE.match(code):
            raise ConfigError(f"{where}.code must be 2-32 of A-Z, 0-9 and '-'")
        if code in seen:
            raise ConfigError(f"{where}.code {code} is listed twice")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name must be a non-empty string")
        if not isinstance(address, str) or ":" not in address:
            raise ConfigError(f"{where}.address must be host:port")
        identity = item.get("identity") or node_dns_name(code)
        seen.add(code)
        result.append(Authority(code, name, address, str(identity)))
    return tuple(result)


def load_registry(path: Path) -> tuple[Authority, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: registry file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_authorities(data, str(path))


def save_registry(path: Path, authorities: tuple[Authority, ...]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"authorities": [asdict(a) for a in authorities]}, indent=2) + "\n")
    tmp.replace(path)  # atomic: a reloading broker never reads half a file
