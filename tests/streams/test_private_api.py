"""faust's and aiokafka's private attributes that ccpulse's batched consumer relies on
(streams/inbox.py, gaps.py, sends.py, app.py, broker_quirks.py), checked against the installed
libraries: an upgrade that renames or drops one fails here, naming it, instead of in a worker
that stops acknowledging. pyproject.toml pins faust-streaming and aiokafka for this reason.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

#: library file (as an importable module) -> private names defined there that ccpulse uses.
USED = {
    "faust.transport.consumer": (
        "_committed_offset", "_acked", "_acked_index", "_n_acked", "_unacked_messages", "_waiting_for_ack",
        "_add_gap", "_read_offset", "_buffered_partitions", "_get_active_partitions", "_is_changelog_tp",
        "_commit_every", "_drain_messages", "_wait_next_records"),
    "faust.transport.drivers.aiokafka": ("_create_worker_consumer", "_to_message", "_thread"),
    "faust.app.base": ("_producer",),
    "aiokafka.client": ("_bootstrap_servers",),
    "aiokafka.consumer.consumer": ("_fetch_max_wait_ms",),
    "mode.services": ("_stopped",),
}


def _defines(source: str, name: str) -> bool:
    return bool(re.search(rf"(self\.{name}\b\s*(:[^=\n]*)?=[^=]|def {name}\b|^\s+{name}\s*:)", source, re.M))


@pytest.mark.parametrize("module", sorted(USED))
def test_every_private_attribute_ccpulse_uses_still_exists(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec and spec.origin, f"{module} is gone: the pinned faust-streaming/aiokafka changed"
    source = Path(spec.origin).read_text()
    missing = [n for n in USED[module] if not _defines(source, n)]
    assert not missing, (f"{module} no longer defines {missing}: ccpulse's consumer (streams/inbox.py, gaps.py, "
                         "sends.py, app.py) relies on them; adapt it before upgrading")


def test_the_list_covers_what_the_code_touches() -> None:
    """Every private faust/aiokafka name the fenced modules read appears in USED."""
    root = Path(__file__).resolve().parents[2] / "streams"
    listed = {n for names in USED.values() for n in names}
    ours = {"_ccpulse_orig_create", "_ccpulse_tansu_end_offsets"}
    touched: set[str] = set()
    for f in ("inbox.py", "gaps.py", "sends.py", "app.py", "broker_quirks.py"):
        text = (root / f).read_text()
        touched |= set(re.findall(r"\b(?:consumer|c|fetcher|client|app\.consumer|Consumer|AIOKafkaConsumerThread|"
                                  r"producer)\._([a-z][a-z_]*)", text))
        touched |= set(re.findall(r'getattr\([\w.]+, "_([a-z][a-z_]*)"', text))
    touched = {"_" + n for n in touched} - ours
    assert touched <= listed, f"add to USED: {sorted(touched - listed)}"
