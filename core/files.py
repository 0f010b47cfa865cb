"""Start-up checks of the files a service is configured to use: one sentence per problem, never a traceback.

The broker and a node open a dozen files as they start (certificates, keys,
the CRL, the registry, the store's directory), each through a different
library: ``ssl``, ``grpc``, ``cryptography``, ``sqlite3``. Each fails in its
own words, most as a long traceback naming neither the file nor the config
key that chose it. So before anything starts, ``signpost broker serve`` and
``signpost node serve`` check every such file here, and this is the one place
where the foreign errors (``OSError``, a parser's ``ValueError``) become a
:class:`StartupError` naming the key and the file::

    tls.crl: cannot read /etc/signpost/tls/crl.pem (no such file)

What each file must hold is said by the packages that know (``certs.checks``,
``broker.preflight``, ``node.preflight``); this module only reads, asks and
words the answer. It must never put a file's contents in a message: some are keys.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError

Check = Callable[[bytes], object]
"""Raises ``ValueError``/``TypeError`` (content unusable) or :class:`FileProblem` (with its own reason)."""


class StartupError(ConfigError):
    """A file the configuration names cannot be used; the message names the config key and the file."""


class FileProblem(ValueError):
    """Raised by a check with its own reason, e.g. 'is not signed by the CA in tls.ca'."""


@dataclass(frozen=True)
class ReadableFile:
    """A file that must exist, be readable and, if ``check`` is given, hold ``what``."""

    key: str
    """The config key that names it, e.g. ``tls.crl``."""
    path: Path
    what: str = "a usable file"
    """What it must hold, for the message: 'a PEM certificate'."""
    check: Check | None = None


@dataclass(frozen=True)
class CreatableFile:
    """A file the service creates on first start when missing: if it exists it is checked like a ReadableFile,
    otherwise its directory must be writable."""

    key: str
    path: Path
    what: str = "a usable file"
    check: Check | None = None


@dataclass(frozen=True)
class WritableDirectory:
    """A directory the service writes in (a node's store and journal)."""

    key: str
    path: Path


Requirement = ReadableFile | CreatableFile | WritableDirectory

_REASONS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "it is a directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EROFS: "read-only file system",
}


def reason(exc: OSError) -> str:
    """A short lower-case reason for an OSError, without the path (the message already names it)."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


def check_files(requirements: Iterable[Requirement]) -> None:
    """Raise StartupError for the first requirement not met, in the order given (a CA before what needs it)."""
    for requirement in requirements:
        if isinstance(requirement, WritableDirectory):
            _check_directory(requirement.key, requirement.path)
        elif isinstance(requirement, CreatableFile) and not requirement.path.exists():
            _check_directory(requirement.key, requirement.path.parent, creating=requirement.path)
        else:
            _check_file(requirement.key, requirement.path, requirement.what, requirement.check)


def _check_file(key: str, path: Path, what: str, check: Check | None) -> None:
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        with path.open("rb") as fh:
            # Without a check one byte proves it readable: a store or an audit log may be gigabytes.
            data = fh.read() if check is not None else fh.read(1)
    except OSError as exc:
        raise StartupError(f"{key}: cannot read {path} ({reason(exc)})") from None
    if check is None:
        return
    try:
        check(data)
    except FileProblem as exc:
        raise StartupError(f"{key}: {path} {exc}") from None
    except (ValueError, TypeError):
        # Not the library's text: it can be long, and some quote what they could not parse.
        raise StartupError(f"{key}: {path} is not {what}") from None


def _check_directory(key: str, directory: Path, *, creating: Path | None = None) -> None:
    action = f"cannot create {creating}" if creating else f"cannot write in {directory}"
    if creating is not None:
        # The service creates missing parents too: what matters is the nearest directory that exists.
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
    if not directory.is_dir():
        why = "no such directory" if not directory.exists() else "not a directory"
        raise StartupError(f"{key}: {action} ({directory}: {why})")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StartupError(f"{key}: {action} ({directory} is not writable by this user)")
