"""Storage of the topics that only land in ClickHouse: interaction records and dead letters.

Records are stored by their own agent (not by the fold) so the fold never waits on
ClickHouse for them, and a record re-sent on a redelivery collapses on its table's key.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

from streams.clickhouse import rows
from streams.worker.flows.kpis import KpiFlow
from streams.worker.runner import BatchRunner, Output


class StorageFlow:
    def __init__(self, kpis: KpiFlow) -> None:
        self.kpis = kpis  # told which records are stored: the figure check waits for them

    async def interactions(self, events: list[Any]) -> Output:
        batch = rows.interaction_batch([orjson.loads(m.value) for m in events], [m.partition for m in events])
        return Output(((rows.INTERACTIONS_TABLE, batch),), then=lambda: self.kpis.on_stored(events))

    async def dead_letters(self, events: list[Any]) -> Output:
        return Output(((rows.DEAD_LETTERS_TABLE, rows.dead_letter_batch(json.loads(m.value) for m in events)),))

    def register(self, runner: BatchRunner, records: Any, dead_letters: Any) -> None:
        runner.agent(records, "store-interactions")(self.interactions)
        runner.agent(dead_letters, "store-dead-letters")(self.dead_letters)
