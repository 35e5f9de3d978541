"""The committed JSON Schema files match the models, and validate what the models accept."""
from __future__ import annotations

import json

import jsonschema
import pytest

from schemas.export import OUT_DIR, render
from schemas.events import parse_event


def test_committed_json_schemas_match_models() -> None:
    rendered = render()
    on_disk = {p.name: p.read_text() for p in OUT_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(rendered), "run: python -m schemas.export"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} is stale: run python -m schemas.export"


GOOD = {"type": "hold_started", "event_id": "e1", "ts": "2026-01-01T10:00:00.000Z", "tenant": "acme",
        "interaction_id": "i1", "channel": "voice", "schema_version": 1}


@pytest.mark.parametrize("doc,ok", [
    (GOOD, True),
    ({**GOOD, "type": "csat", "score": 5}, True),
    ({**GOOD, "type": "csat", "score": 6}, False),
    ({**GOOD, "channel": "fax"}, False),
    ({**GOOD, "surprise": 1}, False),
    ({k: v for k, v in GOOD.items() if k != "event_id"}, False),
    ({"type": "agent_not_ready", "event_id": "e", "ts": "2026-01-01T10:00:00Z", "tenant": "t",
      "agent_id": "a", "reason": "lunch"}, True),
])
def test_schema_and_model_agree(doc: dict, ok: bool) -> None:
    schema = json.loads((OUT_DIR / "event.schema.json").read_text())
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(doc)
    try:
        parse_event(json.dumps(doc))
        model_ok = True
    except Exception:
        model_ok = False
    assert (schema_ok, model_ok) == (ok, ok)
