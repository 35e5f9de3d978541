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

    async def live(self) -> int:
        """Agents needed at the last rolling window's rate, per queue, beside those available now."""
        from streams.domain.staffing import now as needed_now

        w = self.w
        minutes = next((m for m in w.centre.windows.rolling_minutes if m >= 15), max(w.centre.windows.rolling_minutes))
        figures = (await w.writer.read(lambda db: (
            f"SELECT tenant, queue, sum(offered), sum(handled), sum(talk_ms + hold_ms + acw_ms), sum(abandoned), "
            f"sum(wait_answered_ms + wait_abandoned_ms), toUInt64(toUnixTimestamp(max(snapshot_at))) * 1000 "
            f"FROM {db}.kpi_live "
            f"WHERE window_minutes = {int(minutes)} AND queue != '' GROUP BY tenant, queue"))).rows
        available = {(t, q): int(n) for t, q, n in (await w.writer.read(lambda db: (
            f"SELECT tenant, queue, sum(agents) FROM {db}.agents_by_state WHERE state IN ('ready', 'busy', 'acw') "
            "GROUP BY tenant, queue"))).rows}
        out = []
        for tenant, queue, offered, handled, handle_ms, abandoned, wait_ms, snapshot in figures:
            qc = w.centre.queue(tenant, queue)
            row = needed_now(int(offered), minutes * 60, int(handled), int(handle_ms), int(abandoned), int(wait_ms),
                             available.get((tenant, queue), 0), qc.sl_threshold_s, qc.sl_goal, qc.sl_variant)
            out.append({**row, "tenant": tenant, "queue": queue, "window_minutes": minutes, "snapshot_at": snapshot})
        await w.writer.write(rows.STAFFING_LIVE_TABLE, rows.staffing_live_batch(out, w.next_version()))
        return len(out)

    def register(self, app: faust.App) -> None:
        every = max(1.0, min(60.0, self.w.settings.forecast_interval_s or 60.0))

        @app.timer(interval=every, name="forecasts")
        async def forecasts() -> None:
            """Every CCPULSE_FORECAST_INTERVAL_S (and once soon after the start)."""
            if self.due():
                await self.recompute()
            if self.w.settings.forecast_interval_s and 0 in self.w.owned():
                await self.live()
