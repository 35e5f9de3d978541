"""The scheduled recompute of every queue's forecast and the agents it needs (the ``forecasts``
table the staffing board reads). One worker does it: the one that owns events partition 0.

The forecasting itself runs in a thread (statsmodels releases the GIL for little of it, so
the consumer still waits; about 0.2 s a queue, once an hour by default)."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import date

import faust

from streams.clickhouse import rows
from streams.domain import planning
from streams.domain.recount import quote
from streams.worker.context import Worker

log = logging.getLogger("ccpulse.worker")


class PlanningFlow:
    def __init__(self, w: Worker) -> None:
        self.w = w
        self.last_run = 0.0
        self.runs = 0

    def due(self) -> bool:
        s = self.w.settings
        return bool(s.forecast_interval_s) and 0 in self.w.owned() and (
            not self.runs or time.monotonic() - self.last_run >= s.forecast_interval_s)

    async def recompute(self) -> int:
        """Forecast every tenant's queues; the rows written."""
        w, s = self.w, self.w.settings
        self.last_run = time.monotonic()
        self.runs += 1
        version = w.next_version()
        tenants = [r[0] for r in (await w.writer.read(
            lambda db: f"SELECT DISTINCT tenant FROM {db}.queue_settings FINAL ORDER BY tenant")).rows]
        written = 0
        for tenant in tenants:
            lit = quote(tenant)
            newest = (await w.writer.read(lambda db: planning.today_sql(db, lit))).rows
            if not newest or not newest[0][0] or str(newest[0][0]).startswith("1970"):
                continue
            today = date.fromisoformat(str(newest[0][0])[:10])
            first, since = planning.window(w.centre, tenant, today, s.forecast_history_days)
            history = (await w.writer.read(lambda db: planning.history_sql(db, lit, since))).rows
            out = await asyncio.to_thread(planning.forecast_rows, w.centre, tenant, today, first, history,
                                          s.forecast_days)
            await w.writer.write(rows.FORECASTS_TABLE, rows.forecast_batch(out, version))
            written += len(out)
        log.info("forecasts recomputed: %d rows for %d tenants", written, len(tenants))
        return written

    def register(self, app: faust.App) -> None:
        every = max(1.0, min(60.0, self.w.settings.forecast_interval_s or 60.0))

        @app.timer(interval=every, name="forecasts")
        async def forecasts() -> None:
            """Every CCPULSE_FORECAST_INTERVAL_S (and once soon after the start)."""
            if self.due():
                await self.recompute()
