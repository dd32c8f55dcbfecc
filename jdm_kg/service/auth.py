"""CDS Hooks authentication: the EHR's signed JWT (CDS Hooks 2.0, "Trusting CDS Clients").

The CDS Client sends ``Authorization: Bearer <JWT>``, signed with its private key. The service
checks, with PyJWT:

- the header names a ``kid`` found in the JWKS configured from a local file (``--jwks``); the
  ``jku`` header, if any, is never fetched (no network at run time);
- the algorithm is an asymmetric one (RS/PS/ES 256-512); ``none`` and HMAC are refused;
- the signature verifies with that key;
- the claims ``iss``, ``aud``, ``exp``, ``iat`` and ``jti`` are present; ``aud`` is this CDS
  service's URL (``{base}/cds-services/{id}``) or the base URL; ``exp`` has not passed;
  ``iss`` is one of ``--issuer`` when given;
- ``jti`` has not been seen before (until the token expires): a replayed token is refused.

Each failure is a 401 problem whose detail says which check failed (never the token itself).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import jwt

from jdm_kg.service.problems import Problem

__all__ = ["ALGORITHMS", "JwtVerifier"]

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
_LEEWAY = 30  # seconds of clock skew allowed on exp / iat


class JwtVerifier:
    """Checks bearer JWTs against the keys of one local JWKS file."""

    def __init__(self, jwks_path: str, issuers: tuple[str, ...] = ()) -> None:
        try:
            document = json.loads(Path(jwks_path).read_text(encoding="utf-8"))
            keyset = jwt.PyJWKSet.from_dict(document)
        except (OSError, ValueError, jwt.PyJWTError) as err:
            raise ValueError(f"{jwks_path}: not a usable JWKS file ({err})") from None
        self.keys = {key.key_id: key for key in keyset.keys if key.key_id}
        if not self.keys:
            raise ValueError(f"{jwks_path}: no key with a 'kid' in the JWKS")
        self.issuers = set(issuers)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, audiences: list[str]) -> dict[str, Any]:
        """The token's claims, or :class:`Problem` ``unauthorized`` saying which check failed."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Problem("unauthorized", "no bearer token: the CDS client must send Authorization: Bearer <JWT>")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Problem("unauthorized", "the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Problem("unauthorized", f"JWT algorithm {alg!r} is refused (unsigned or symmetric); sign with "
                                          "an asymmetric key (RS384 or ES384 as CDS Hooks recommends)")
        key = self.keys.get(header.get("kid", ""))
        if key is None:
            raise Problem("unauthorized", f"JWT key id {header.get('kid')!r} is not in the configured JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key.key, algorithms=[alg], audience=audiences, leeway=_LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Problem("unauthorized", "the JWT has expired (exp)") from None
        except jwt.InvalidAudienceError:
            raise Problem("unauthorized", "the JWT's audience (aud) is not this CDS service's URL") from None
        except jwt.MissingRequiredClaimError as err:
            raise Problem("unauthorized", f"the JWT lacks the claim {err.claim!r}") from None
        except jwt.InvalidSignatureError:
            raise Problem("unauthorized", "the JWT's signature does not verify with the configured key") from None
        except jwt.PyJWTError as err:
            raise Problem("unauthorized", f"the JWT is not valid: {err}") from None
        except (TypeError, ValueError):  # the header's algorithm does not fit the key of that kid
            raise Problem("unauthorized", f"the JWT's algorithm {alg} does not fit the configured key "
                                          f"{header.get('kid')!r}") from None
        if self.issuers and claims["iss"] not in self.issuers:
            raise Problem("unauthorized", f"JWT issuer {claims['iss']!r} is not an accepted issuer")
        self._once(str(claims["jti"]), float(claims["exp"]))
        return claims

    def _once(self, jti: str, exp: float) -> None:
        now = time.time()
        with self._lock:
            for old in [k for k, until in self._seen.items() if until + _LEEWAY < now]:
                del self._seen[old]
            if jti in self._seen:
                raise Problem("unauthorized", "the JWT was already used (jti replayed)")
            self._seen[jti] = exp
