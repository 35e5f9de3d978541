"""Intake tokens, one or more per tenant: only their SHA-256 is stored (``intake-tokens.json`` in
the state folder, 0600), so the file does not let anyone write events."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from streams.config.private import write_private


def _read(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Atomically, readable by this user only (0600) from the first byte."""
    write_private(path, json.dumps(data))


def tokens_path(state_dir: Path) -> Path:
    return state_dir / "intake-tokens.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load(state_dir: Path) -> dict[str, str]:
    """sha256 of a token -> its tenant."""
    return _read(tokens_path(state_dir))


def issue(state_dir: Path, tenant: str) -> str:
    """A new token for ``tenant`` (returned once; only its hash is kept)."""
    token = "cci_" + secrets.token_urlsafe(32)
    known = load(state_dir)
    known[_digest(token)] = tenant
    _write_private(tokens_path(state_dir), known)
    return token


def tenant_of(known: dict[str, str], authorization: str | None) -> str | None:
    """The tenant an ``Authorization: Bearer <token>`` header speaks for, else None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    digest = _digest(authorization[len("Bearer "):].strip())
    for stored, tenant in known.items():
        if hmac.compare_digest(stored, digest):
            return tenant
    return None


def twilio_path(state_dir: Path) -> Path:
    return state_dir / "twilio-auth.json"


def set_twilio(state_dir: Path, tenant: str, auth_token: str) -> None:
    """The tenant's Twilio auth token, which signs its TaskRouter callbacks (kept as is: the
    signature check needs it; the file is 0600)."""
    known = _read(twilio_path(state_dir))
    known[tenant] = auth_token
    _write_private(twilio_path(state_dir), known)


def twilio_token(state_dir: Path, tenant: str) -> str | None:
    return _read(twilio_path(state_dir)).get(tenant)
