"""HMAC-signed, expiring URLs: attachment downloads must work without auth (the SDK fetches them bare),
so the URL itself is the credential, bound to one path and one expiry time."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

DEFAULT_TTL_SECONDS = 3600


class Signer:
    def __init__(self, secret_key: bytes, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        if not secret_key:
            raise ValueError("a secret key is needed to sign URLs")
        self._key = secret_key
        self.ttl_seconds = ttl_seconds

    def _sig(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, *, now: float | None = None) -> str:
        """`path` plus `expires` and `sig` query parameters."""
        expires = int(now if now is not None else time.time()) + self.ttl_seconds
        return f"{path}?expires={expires}&sig={self._sig(path, expires)}"

    def verify(self, path: str, expires: int, sig: str, *, now: float | None = None) -> bool:
        if expires < (now if now is not None else time.time()):
            return False
        # Bytes: compare_digest rejects non-ASCII str, and a forged signature may be any text.
        return hmac.compare_digest(self._sig(path, expires).encode(), sig.encode("utf-8", "surrogatepass"))


def attachment_path(tenant_id: object, run_id: object, name: str) -> str:
    return f"/attachments/{tenant_id}/{run_id}/{quote(name, safe='')}"
