"""Who may use the worker's HTTP endpoint beyond ``/health``: whoever can read the token
file the worker writes in its state folder (mode 0600, so the local user who runs it, or
root), from a program, not a web page.

The endpoint runs typed queries on the embedded engine and starts recounts. A page open in
a browser on the same machine can post to localhost; it can neither read the token nor
send a request without an ``Origin`` header, so both are required.
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "worker-token"


def token_path(state_dir: Path) -> Path:
    return Path(state_dir) / TOKEN_FILE


def ensure_token(state_dir: Path) -> str:
    """The folder's token, created (0600) on the first worker's start and kept after."""
    path = token_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # a copy made readable by others is narrowed again
        token = path.read_text().strip()
        if token:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(state_dir: Path) -> str | None:
    try:
        return token_path(state_dir).read_text().strip() or None
    except OSError:
        return None


def refusal(headers: dict[str, str] | object, token: str, json_body: bool) -> tuple[int, str] | None:
    """(status, why) when a request must be refused, else None."""
    get = headers.get  # type: ignore[attr-defined]
    if get("Origin") is not None:
        return 403, "cross-origin requests are refused (use `ccpulse sql` or send no Origin header)"
    if json_body and (get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
        return 415, "send Content-Type: application/json"
    sent = get("Authorization") or ""
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return 401, "send Authorization: Bearer <the token in the worker's state folder, file worker-token>"
    return None
