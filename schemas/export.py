"""Export JSON Schema files for producers in other languages: ``python -m schemas.export``.

The files are committed; tests/schemas/test_export.py fails when they drift from the models.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.events import AgentEvent, Event, InteractionEvent
from schemas.records import DeadLetter, InteractionRecord

OUT_DIR = Path(__file__).resolve().parent / "json"

SCHEMAS: dict[str, Any] = {
    "event": Event,
    "interaction-event": InteractionEvent,
    "agent-event": AgentEvent,
    "interaction-record": InteractionRecord,
    "dead-letter": DeadLetter,
}


def render() -> dict[str, str]:
    """File name → JSON text, deterministic (sorted keys, trailing newline)."""
    out = {}
    for name, model in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://ccpulse.dev/schemas/{name}.schema.json", "title": name, **schema}
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    for fname, text in render().items():
        (OUT_DIR / fname).write_text(text)
        print(OUT_DIR / fname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
