"""What an ID token must be for the broker to believe it, and who it then says the user is.

The policy of the portal's sign-in, in one place:

- signed (JWS) with an asymmetric algorithm the issuer advertises, by a key in the issuer's published
  key set: never ``alg: none``, never a MAC (HS*) keyed with a public key;
- ``iss`` exactly the issuer of the authority the browser chose when it started signing in;
- ``aud`` the broker's client id (or a list holding it), and ``azp`` the client id whenever it is present
  or there are several audiences;
- ``exp`` in the future, ``iat`` and ``nbf`` not in the future, each within a small leeway;
- ``nonce`` exactly the one this sign-in sent (single use: the pending sign-in that held it is gone);
- ``sub`` present.

Then the user: their role from the authority's claim mapping (exactly one role, or none at all is a
refusal), their id the issuer and subject joined, and their **organisation the authority whose issuer
signed the token**: a claim naming an organisation, whatever the identity provider or user put in it,
is never read.

Signature and claim checks are joserfc's (authlib's JOSE library); this module chooses what to require
and turns every failure into a :class:`SignInError` whose words name no token, claim value or key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from broker.portal.config import AuthorityIdp
from broker.portal.signin import PortalUser, SignInError
from certs.identity import Identity, Role

MAX_TOKEN_BYTES = 16 * 1024


def token_header(token: str, algorithms: tuple[str, ...]) -> Mapping[str, Any]:
    """The token's protected header, read before verifying only to pick the key; an unaccepted alg is refused here."""
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise SignInError("The sign-in token was missing or malformed. Please sign in again.")
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise SignInError("The sign-in token was missing or malformed. Please sign in again.") from exc
    if header.get("alg") not in algorithms:
        raise SignInError("The sign-in token was not signed in a way Signpost accepts.")
    return header


def verify_id_token(
    token: str,
    *,
    keys: KeySet,
    algorithms: tuple[str, ...],
    idp: AuthorityIdp,
    nonce: str,
    now: float,
    leeway: int,
) -> Mapping[str, Any]:
    """The ID token's claims, once its signature and every required claim check out."""
    token_header(token, algorithms)
    try:
        claims = jwt.decode(token, keys, algorithms=list(algorithms)).claims
    except JoseError as exc:
        raise SignInError("The sign-in token's signature did not verify. Please sign in again.") from exc
    _check_issuer_and_nonce(claims, idp, nonce)
    registry = jwt.JWTClaimsRegistry(
        now=int(now),
        leeway=leeway,
        sub={"essential": True},
        aud={"essential": True, "value": idp.client_id},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise SignInError("The sign-in token had expired. Please sign in again.") from exc
    except JoseError as exc:
        raise SignInError("The sign-in token was not meant for Signpost, or is not yet valid.") from exc
    _check_authorised_party(claims, idp)
    return claims


def user_from_claims(claims: Mapping[str, Any], idp: AuthorityIdp) -> PortalUser:
    """The signed-in user: role by the authority's mapping, organisation by the issuer (never a claim)."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    email = verified_email(claims)
    name = next((str(claims[k]) for k in ("name", "preferred_username") if isinstance(claims.get(k), str)), email)
    identity = Identity(
        role=role_of(claims, idp),
        id=f"{issuer}#{subject}",
        name=name or subject,
        organisation=idp.organisation,
        email=email,
    )
    return PortalUser(identity=identity, issuer=issuer, subject=subject, authority=idp.code)


def verified_email(claims: Mapping[str, Any]) -> str:
    """The token's ``email``, unless the provider says it has not verified it (``email_verified`` false).

    The address goes into the audit trail and the notices authorities send about who searched, so an
    address the user typed and the provider never checked must not stand there as theirs. A provider
    that sends no ``email_verified`` at all (Entra ID, for one) is trusted for its own directory's
    addresses: its accounts are made by the authority's IT team, not by the user.
    """
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False or claims.get("email_verified") == "false":
        return ""
    return email


def role_of(claims: Mapping[str, Any], idp: AuthorityIdp) -> Role:
    """The one role the authority's mapping grants; several or none is a refusal, never a guess."""
    granted = [role for role, value in idp.roles.items() if value in claim_values(claims, idp.role_claim)]
    if not granted:
        raise SignInError(
            f"Your {idp.name} account is not allowed to use Signpost. Ask your IT team to add you to the right group."
        )
    if len(granted) > 1:
        # Searching and auditing searches are kept apart: an account holding both is an error to fix, not to resolve.
        raise SignInError(
            f"Your {idp.name} account is in more than one Signpost group. Ask your IT team to leave you in one."
        )
    return granted[0]


def claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The strings a claim holds: ``groups`` as a string or a list of strings, or ``outer.inner`` for the
    ``inner`` member of an object or of each object in a list (NHS CIS2's ``nhsid_nrbac_roles.role_code``)."""
    outer, _, inner = path.partition(".")
    held = claims.get(outer)
    items = held if isinstance(held, list) else [held]
    if inner:
        items = [item.get(inner) for item in items if isinstance(item, dict)]
    return {item for item in items if isinstance(item, str)}


def _check_issuer_and_nonce(claims: Mapping[str, Any], idp: AuthorityIdp, nonce: str) -> None:
    # Plain equality on strings: a list holding the right value (which a generic "value" check accepts)
    # is not an issuer or a nonce.
    if not isinstance(claims.get("iss"), str) or claims["iss"] != idp.issuer:
        raise SignInError(f"The sign-in token did not come from {idp.name}'s sign-in service.")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        raise SignInError("The sign-in token did not belong to this sign-in. Please sign in again.")


def _check_authorised_party(claims: Mapping[str, Any], idp: AuthorityIdp) -> None:
    audience, azp = claims.get("aud"), claims.get("azp")
    several = isinstance(audience, list) and len(audience) > 1
    if (azp is not None or several) and azp != idp.client_id:
        raise SignInError("The sign-in token was not meant for Signpost, or is not yet valid.")
