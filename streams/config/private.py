"""Secrets on disk: written readable by their owner only (0600) from the first byte, and
replaced atomically (a crash leaves the old file or the new one). A temp file left by an
earlier crash is never reused: ``O_TRUNC`` would keep its mode, and a 0644 leftover made a
plaintext token world-readable."""
from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
