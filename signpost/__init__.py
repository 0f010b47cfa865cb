"""Signpost: a federated record-location service for children's services.

This package holds what the broker, the nodes and the command line share: the
``signpost`` command, the local demo federation, synthetic data, logging set-up
and identifier rules. The broker lives in :mod:`broker`, the node agent in
:mod:`node`, the PKI in :mod:`certs` and the wire contract in :mod:`protos`.
"""

__version__ = "0.1.0"
