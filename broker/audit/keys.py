"""The audit log's two keys, and what each one is used for.

* An Ed25519 signing key signs every tree head the log reaches (:mod:`broker.audit.heads`). Its public
  half (written beside it as PEM) lets anyone check a head without being able
  to forge one. The key signs tree heads and nothing else, so a signature can
  never be lifted from some other message.
* An HMAC key turns a child's identifiers into the ``subject_hashes`` a search's
  audit entry carries, so an auditor can find every search about one child
  without the log holding who the child is.

Why these combinations (``subject_hashes``): one hash of given name + family
name + date of birth, one of family name + date of birth (a child whose given
name was misspelt, shortened or changed is still found), and one of the NHS
number when it was given. An auditor answering a subject access request knows
exactly these facts about the person asking, so they can compute the same
hashes and look them up; nothing finer (no postcode, no partial dates) is
hashed, because every extra combination is one more handle on a child. The
log is not a register: without the HMAC key no hash can be tested against a
guessed name, and the key never sits in the database.

Key files are created with mode 0600 from the first byte (``os.open``), under
a temporary name and then linked into place, so two brokers starting at once
end up with one key between them rather than two half-written files.

This module must never log, print or return a plaintext identifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.audit.errors import AuditConfigError
from core.identifiers import normalise_nhs_number, parse_date
from core.names import letters_key

HMAC_KEY_BYTES = 32


# ---------------------------------------------------------------- key files


def _create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Write ``data`` to ``path`` (mode 0600 unless told) unless it exists; False if another writer won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # link() fails if the name exists: the key is either wholly ours or wholly someone else's.
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def public_key_path(signing_key_path: Path) -> Path:
    """Where the public half of ``signing_key_path`` is written: ``audit.key`` -> ``audit.pub.pem``."""
    return signing_key_path.with_suffix(".pub.pem")


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path``, creating it (0600) and its public PEM if missing."""
    if not path.exists():
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_exclusive(path, pem)
    key = load_signing_key(path)
    pub, pem = public_key_path(path), public_key_pem(key.public_key())
    # Compared, not re-created, when present: the keys may be mounted read-only (Kubernetes Secrets, compose),
    # where even the temporary file of _create_exclusive cannot be made. Otherwise linked into place like the
    # key, so a racing reader never sees half a file.
    created = not pub.exists() and _create_exclusive(pub, pem, 0o644)
    if not created and pub.read_bytes() != pem:
        # A stale public key would make every honest head look forged to whoever trusts that file.
        raise AuditConfigError(f"{pub} is not the public half of {path}; move one of them aside")
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuditConfigError(f"{path}: cannot read the audit signing key ({type(exc).__name__})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditConfigError(f"{path}: expected an Ed25519 private key in PEM")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AuditConfigError(f"{path}: cannot read the audit public key ({type(exc).__name__})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditConfigError(f"{path}: expected an Ed25519 public key in PEM")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_hmac_key(path: Path) -> bytes:
    """Load the 32-byte HMAC key stored as hex at ``path``, creating it (0600) if missing."""
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(HMAC_KEY_BYTES).hex().encode() + b"\n")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise AuditConfigError(f"{path}: cannot read the subject HMAC key ({type(exc).__name__})") from exc
    if len(key) != HMAC_KEY_BYTES:
        raise AuditConfigError(f"{path}: the subject HMAC key must be {HMAC_KEY_BYTES} bytes as hex")
    return key


# ---------------------------------------------------------------- subject hashes


def _name(text: str) -> str:
    # Case, accents and punctuation folded, so "O'Brien" == "obrien"; letters of every script kept, so a
    # name written in Chinese or Arabic has hashes too (for Latin names this is "".join(tokens(text))).
    return letters_key(text)


def _dob(value: str | dt.date) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return parse_date(value.strip()).isoformat()
    except ValueError as exc:
        raise ValueError(f"date_of_birth {exc}") from None  # the kernel's reasons never echo the value


def subject_hashes(
    key: bytes,
    *,
    given_name: str,
    family_name: str,
    date_of_birth: str | dt.date | None,
    nhs_number: str | None = None,
) -> list[str]:
    """HMAC-SHA256 (hex) of name + date of birth, family name + date of birth, and the NHS number; of
    given + family name alone when there is no date of birth.

    Names are normalised with ``core.names`` first; a combination with an
    empty part is left out. Fields are joined with "|", which no normalised
    name or date contains, so no two combinations can produce the same message.
    """
    given, family = _name(given_name), _name(family_name)
    dob = _dob(date_of_birth) if date_of_birth else ""
    messages: list[str] = []
    if given and family and dob:
        messages.append(f"{given}|{family}|{dob}")
    if family and dob:
        messages.append(f"{family}|{dob}")
    if given and family and not dob:
        # A search without a date of birth (names and home) is still found by a subject access request:
        # ``signpost audit subject-hash`` prints this one beside the dated ones.
        messages.append(f"{given}|{family}")
    # The broker has already normalised it (core.identifiers); an auditor may type "943-476-5919".
    digits = "".join(c for c in normalise_nhs_number(nhs_number or "") if "0" <= c <= "9")
    if digits:
        messages.append(digits)
    return [hmac.new(key, m.encode(), hashlib.sha256).hexdigest() for m in messages]
