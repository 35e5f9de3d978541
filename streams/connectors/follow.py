"""Reading a log file as it grows, rotation-safe, from a stored position.

The position (the file's inode and the byte offset after the last line whose events the broker
acknowledged) is written atomically after each batch, so a connector killed at any moment
resumes where its last acknowledged batch ended: lines after it are read again and give the same
event ids (nothing counted twice), none is skipped. A rotated file (renamed away, a new one in its
place) is read to its end before the new one from its start; a file cut short in place
(copytruncate) is read again from its start.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: The longest line read (queue_log lines are a few hundred bytes): a longer one is skipped to
#: its newline in chunks of this size and handed on as ``None``, for the dead letters.
MAX_LINE = 1024 * 1024


@dataclass
class Position:
    inode: int = 0
    offset: int = 0


class LineFollower:
    def __init__(self, path: Path, state_file: Path) -> None:
        self.path, self.state_file = path, state_file
        self.pos = self._load()
        self._fh: IO[bytes] | None = None
        self._inode = 0
        self._scanned_to = 0  # how far an over-long line was searched for its newline

    def _load(self) -> Position:
        try:
            d = json.loads(self.state_file.read_text())
            return Position(int(d["inode"]), int(d["offset"]))
        except (OSError, ValueError, KeyError):
            return Position()

    def commit(self, pos: Position) -> None:
        """Store the position atomically (a crash leaves the old one or the new one, never half)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"path": str(self.path), "inode": pos.inode, "offset": pos.offset}))
        os.replace(tmp, self.state_file)
        self.pos = pos

    def _open(self) -> bool:
        # Rotated while we were stopped: finish the old file first (logrotate's name for it: .1).
        older = self.path.with_name(self.path.name + ".1")
        path = self.path
        try:
            if self.pos.inode and older.exists() and older.stat().st_ino == self.pos.inode \
                    and self.path.exists() and self.path.stat().st_ino != self.pos.inode:
                path = older
        except OSError:
            pass
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return False
        inode = os.fstat(fh.fileno()).st_ino
        offset = self.pos.offset if inode == self.pos.inode else 0  # another file: from its start
        if os.fstat(fh.fileno()).st_size < offset:
            offset = 0  # cut short in place
        fh.seek(offset)
        self._fh, self._inode = fh, inode
        self.pos = Position(inode, offset)
        return True

    def read(self, max_lines: int = 5000) -> tuple[list[tuple[int, str | None]], Position]:
        """Up to ``max_lines`` whole lines after the position: (their offsets, text), and the position
        after them (to commit once their events are acknowledged). A last line still being written
        (no newline yet) waits for the next read; a line longer than ``MAX_LINE`` comes as ``None``
        once its newline is found, and is never held whole in memory."""
        if self._fh is None and not self._open():
            return [], self.pos
        assert self._fh is not None
        lines: list[tuple[int, str | None]] = []
        offset = self._fh.tell()
        while len(lines) < max_lines:
            raw = self._fh.readline(MAX_LINE + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                end = self._skip_long_line(offset + len(raw))
                if end is None:
                    self._fh.seek(offset)  # its newline has not come yet
                    break
                lines.append((offset, None))
                offset = end
                self._fh.seek(offset)
                continue
            if not raw.endswith(b"\n"):
                self._fh.seek(offset)  # incomplete: read it again when it is
                break
            lines.append((offset, raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")))
            offset += len(raw)
        if not lines and self._rotated():
            self._fh.close()
            self._fh = None
            self.pos = Position(0, 0)
            return self.read(max_lines)
        return lines, Position(self._inode, offset)

    def _skip_long_line(self, scan_from: int) -> int | None:
        """The offset after the newline that ends an over-long line, scanning in bounded chunks
        from where the last call stopped (a 32 MB line is read once, not at every poll)."""
        assert self._fh is not None
        start = max(scan_from, self._scanned_to)
        self._fh.seek(start)
        while True:
            chunk = self._fh.read(MAX_LINE)
            if not chunk:
                self._scanned_to = start
                return None
            nl = chunk.find(b"\n")
            if nl >= 0:
                self._scanned_to = 0
                return start + nl + 1
            start += len(chunk)

    def _rotated(self) -> bool:
        """At the end of the open file: a different file now has the name, or ours was cut short."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        assert self._fh is not None
        return st.st_ino != self._inode or st.st_size < self._fh.tell()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
