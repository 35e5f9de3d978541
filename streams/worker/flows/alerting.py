"""Alerts: every partition's live parts of a queue → that queue's rule states (streams/domain/
alerts.py, pure) → alert history rows and notifications on the alerts topic → delivery to
the log, a webhook and Slack (streams/worker/notify.py), acked only once delivered or
dead-lettered.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from streams.clickhouse import rows
from streams.config.settings import Settings
from streams.domain import alerts as al
from streams.domain.validate import Rejected
from streams.kafka.sends import PartitionBatches
from streams.worker.context import Worker
from streams.worker.runner import BatchRunner, Output

log = logging.getLogger("ccpulse.worker")


def notifiers_for(s: Settings, on_dead: Any = None) -> list[Any]:
    """Where alerts go besides the alerts topic and table: the log, a webhook, Slack."""
    from streams.worker.notify import LogNotifier, Notifier

    def dead(n: Any, reason: str) -> None:
        log.error("alert %s (%s) not delivered: %s", n.alert_id, n.status, reason)
        if on_dead is not None:
            on_dead(n, reason)

    out: list[Any] = [LogNotifier(on_dead=dead)]
    if s.alert_webhook_url:
        secret = s.alert_webhook_secret.get_secret_value() if s.alert_webhook_secret else None
        out.append(Notifier(s.alert_webhook_url, "webhook", secret, on_dead=dead))
    if s.alert_slack_url:
        out.append(Notifier(s.alert_slack_url, "slack", on_dead=dead))
    return out


def notification(n: dict[str, Any]) -> Any:
    from streams.worker.notify import Notification

    return Notification(**{k: v for k, v in n.items() if k != "renotify"})


class AlertFlow:
    def __init__(self, w: Worker, alert_sends: Any | None = None) -> None:
        self.w = w
        # The evaluation's own buffer: its sends go only after its rows are stored.
        self.sends = alert_sends if alert_sends is not None else PartitionBatches(w.app)
        self.undelivered: list[tuple[Any, str]] = []
        self.notifiers = notifiers_for(w.settings, lambda n, reason: self.undelivered.append((n, reason)))

    async def evaluate(self, events: list[Any]) -> Output:
        """Fold a batch of live parts into each queue's state and evaluate its rules."""
        w, table = self.w, self.w.alert_groups.data
        touched: dict[bytes, int] = {}
        for m in events:
            st = table.get(m.key) or al.new_group_state()
            al.take_live_part(st, orjson.loads(m.value))
            table[m.key] = st
            touched[m.key] = m.partition
        fired: list[dict[str, Any]] = []
        for key, partition in touched.items():
            st = table[key]
            notes = al.evaluate_group(w.centre, tuple(orjson.loads(key)), st)
            for n in notes:
                ident = n["alert_id"].encode()
                self.sends.add(w.settings.topic_alerts, w.group_partition(ident), ident, orjson.dumps(n))
            fired += notes
            self.sends.add(w.changelogs.alert_groups, partition, key, orjson.dumps(st))

        def count() -> None:
            w.counters.alerts += len(fired)
        # The history row before the notification and the new state: once the state says
        # "firing", a replayed batch would not write the row again.
        return Output(((rows.ALERTS_TABLE, rows.alert_batch(fired)),), via=self.sends, rows_first=True, then=count)

    async def deliver(self, events: list[Any]) -> Output:
        """Notify from the alerts topic, and ack only once every channel has delivered or
        dead-lettered: a crash cannot lose a notification (a redelivery may repeat one;
        receivers de-duplicate on alert_id, status and at_ms). Its own agent, so a slow
        receiver holds up notifications, never the figures."""
        source = {}
        for m in events:
            n = notification(orjson.loads(m.value))
            source[(n.alert_id, n.status, n.at_ms)] = m
            for notifier in self.notifiers:
                notifier.enqueue(n)
        while any(getattr(x, "pending", 0) for x in self.notifiers):
            await asyncio.sleep(0.02)
        # Given up on: to the dead-letter topic (and table), with the reason.
        for n, reason in self.undelivered:
            src = source.get((n.alert_id, n.status, n.at_ms))
            if src is not None:
                self.w.dead_letter(src, Rejected("alert_undelivered", reason))
        self.undelivered.clear()
        return Output()

    def health(self) -> list[dict[str, Any]]:
        return [{"kind": type(n).__name__, "sent": n.sent, "retried": getattr(n, "retried", 0),
                 "dead": n.dead, "last_error": n.last_error} for n in self.notifiers]

    async def stop(self) -> None:
        """Before the writer closes: what a notifier could not send is dead-lettered."""
        for n in self.notifiers:
            await n.stop()

    def register(self, app: faust.App, runner: BatchRunner, live_parts: Any, alerts: Any) -> None:
        runner.agent(live_parts, "alerts", pipelined=False)(self.evaluate)
        runner.agent(alerts, "deliver-alerts", size=100, within=0.05, pipelined=False)(self.deliver)

        @app.task
        async def _start_notifiers() -> None:
            for n in self.notifiers:
                await n.start()
