"""What ``/health`` shows, and the consumer watchdog that acts on the same signs."""
from __future__ import annotations

from typing import Any

import faust

from streams.domain.clock import clock_key
from streams.kafka import internals
from streams.kafka.gaps import GapFiller
from streams.kafka.watchdog import ConsumerWatchdog
from streams.worker.context import Worker
from streams.worker.flows.alerting import AlertFlow
from streams.worker.flows.kpis import KpiFlow
from streams.worker.web import task_dump


class HealthFlow:
    def __init__(self, w: Worker, kpis: KpiFlow, alerting: AlertFlow, gaps: GapFiller) -> None:
        self.w, self.kpis, self.alerting, self.gaps = w, kpis, alerting, gaps
        app = w.app
        self.watchdog = ConsumerWatchdog(
            app, w.settings.stall_timeout_s,
            quiet=lambda: bool(app.in_recovery or getattr(app, "rebalancing", False) or not kpis.settled()),
            busy=lambda: any(p["in_batch_since"] for p in w.progress.values()) or bool(w.writer.degraded),
            events_seen=lambda: w.counters.events, task_dump=lambda: task_dump(app))

    def health(self) -> dict[str, Any]:
        """Liveness, progress, limits, figure checks, why the sink is degraded."""
        w, c, s, kpis, writer = self.w, self.w.counters, self.w.settings, self.kpis.kpis, self.w.writer
        app, limits, table = w.app, w.limits, w.interactions.data
        return {
            "status": "degraded" if writer.degraded else "ok",
            "degraded": writer.degraded, "engine": writer.engine,  # type: ignore[attr-defined]
            "events": c.events, "dead_letters": c.dead_letters, "records_emitted": c.records_emitted,
            "timed_out": c.timed_out, "expired": c.expired, "late_updates": c.late_updates,
            "offsets_refetched": self.gaps.filled, "alerts": c.alerts, "broker_flavour": w.flavour,
            "limits": {"open_contacts": limits.open_contacts, "max_open_contacts": s.max_open_contacts,
                       "near_limit": limits.open_contacts >= 0.8 * s.max_open_contacts,
                       "contacts_held": limits.contacts_held,
                       "max_events_per_interaction": s.max_events_per_interaction},
            "figures": {**self.kpis.checker.figures, "pending_late": self.kpis.late.pending()
                        + sum(len(kp.late_keys) for kp in kpis.values())},
            "notifiers": self.alerting.health(),
            # (contact, its event time, the partition's clock); the contact as tenant/id
            "late_examples": {p: [(i.replace("\x1f", "/"), ts, now) for i, ts, now in k.late_examples]
                              for p, k in kpis.items() if k.late_examples},
            "rows_written": writer.rows_written,  # type: ignore[attr-defined]
            "first_event_at": c.first_event_at, "last_write_at": writer.last_write_at,  # type: ignore[attr-defined]
            "event_time_ms": w.clock.now_ms(),
            "states": len(table) - sum(clock_key(p) in table for p in range(s.partitions)),
            "agents": w.progress,
            "paused": sorted(f"{tp.topic}:{tp.partition}" for tp in internals.paused_for_buffer(app.consumer)),
            "not_fetched": sorted(f"{tp.topic}:{tp.partition}" for tp in self.watchdog.not_fetched()),
            "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()),
        }

    def register(self, app: faust.App) -> None:
        @app.timer(interval=5.0, name="fetch-watchdog")
        async def fetch_watchdog() -> None:
            """Partitions assigned but not fetched are resumed; a stalled consumer restarts (streams/kafka/watchdog.py)."""
            await self.watchdog.check()
