"""faust's and aiokafka's private attributes that ccpulse relies on, all inside the fence
package streams/kafka/, checked against the installed libraries: an upgrade that renames or
drops one fails here, naming it, instead of in a worker that stops acknowledging.
pyproject.toml pins faust-streaming and aiokafka for this reason.
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
        "_commit_every", "_drain_messages", "_wait_next_records", "_gap", "_new_offset"),
    "faust.transport.drivers.aiokafka": ("_create_worker_consumer", "_to_message", "_thread", "_ensure_consumer"),
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
    assert not missing, (f"{module} no longer defines {missing}: streams/kafka/ relies on them; adapt it "
                         "before upgrading")


_TOUCH = re.compile(r"\b(?:consumer|c|fetcher|client|app\.consumer|Consumer|AIOKafkaConsumerThread|producer|"
                    r"self\._app\.producer)\._([a-z][a-z_]*)|getattr\([\w.]+, \"_([a-z][a-z_]*)\"")
_OURS = {"_ccpulse_orig_create", "_ccpulse_tansu_end_offsets", "_ccpulse_redacts"}  # our own markers


def _touched(path: Path) -> set[str]:
    return {"_" + (a or b) for a, b in _TOUCH.findall(path.read_text())} - _OURS


def test_the_list_covers_what_the_fence_touches() -> None:
    fence = Path(__file__).resolve().parents[2] / "streams" / "kafka"
    listed = {n for names in USED.values() for n in names}
    touched = set().union(*(_touched(f) for f in fence.glob("*.py")))
    assert touched <= listed, f"add to USED: {sorted(touched - listed)}"


def test_nothing_outside_the_fence_touches_a_private_attribute() -> None:
    root = Path(__file__).resolve().parents[2]
    outside = [f for pkg in ("streams", "bench") for f in (root / pkg).rglob("*.py") if "kafka" not in f.parts]
    found = {str(f.relative_to(root)): sorted(t) for f in outside if (t := _touched(f))}
    assert not found, f"private faust/aiokafka attributes outside streams/kafka/: {found}"
