"""Errors raised by the node agent.

    NodeError
    ├── ImportFileError      the CSV as a whole cannot be read (missing columns, not UTF-8)
    ├── StoreError           the node's own database failed
    ├── MatchRequestError    a Match request that cannot be answered (bad subject)
    └── DeliveryError        a notification the mail relay or webhook did not take (node.delivery)

Row-level problems in an import are not exceptions: they are collected as
:class:`node.records.RowError` so that good rows are kept.
"""


class NodeError(Exception):
    """Base of every node agent error."""


class ImportFileError(NodeError):
    """The import file cannot be read at all."""


class StoreError(NodeError):
    """The node's store could not be read or written."""


class MatchRequestError(NodeError):
    """A Match request whose subject cannot be matched; the message is safe to return."""


class DeliveryError(NodeError):
    """A notification was not accepted; the message names the channel and the failure, never the content."""
