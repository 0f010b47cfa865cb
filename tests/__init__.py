"""The test suite; importing it first chooses grpc's transport as the `signpost` command does."""

import os

from core.transport import choose_grpc_transport

# Before tests.conftest (imported after this package) or any test loads grpc: it reads the choice once, at load.
choose_grpc_transport(os.environ)
