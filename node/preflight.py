"""Every file a node is configured to use, and what each must hold: checked before it starts.

``signpost node serve`` passes these to :func:`core.files.check_files`, so a
missing certificate, key, CRL or broker key, or a store directory the node
cannot write in, is one sentence naming the config key, not a traceback from
inside ``grpc`` or ``sqlite3``. The store itself may be missing (a node with no
import yet serves an empty store); its directory may not.
"""

from __future__ import annotations

from certs.checks import ed25519_public, tls_requirements
from core.files import ReadableFile, Requirement, WritableDirectory
from node.config import NodeConfig


def requirements(config: NodeConfig) -> list[Requirement]:
    keys = [
        ReadableFile(f"broker_public_keys[{i}]", path, "an Ed25519 public key (PEM)", ed25519_public)
        for i, path in enumerate(config.broker_public_keys)
    ]
    # SQLite writes its journal files beside the store: the directory must be writable, not only the file.
    store: list[Requirement] = [WritableDirectory("store", config.store.parent)]
    if config.journal.parent != config.store.parent:
        store.append(WritableDirectory("journal", config.journal.parent))
    return [*tls_requirements(config.tls), *keys, *store]
