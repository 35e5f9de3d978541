"""The alert rules of the centre file (``alerts.rules``): what to watch and when to fire.

Configuration only, so the centre file can be read without the alert machinery; the
lifecycle that applies a rule to the live figures is streams/domain/alerts.py.
"""
from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _HasGoal(Protocol):
    """What a rule reads of a queue's settings (streams.config.centre.QueueConfig)."""

    sl_goal: float


Metric = Literal["service_level", "abandon_rate", "asa_s", "oldest_wait_s", "waiting", "ready_agents_while_waiting"]
#: Metrics of a whole queue (all channels): evaluated on the group (tenant, queue, "*").
QUEUE_METRICS = ("ready_agents_while_waiting",)
#: Metrics that are rates of contacts that left the queue: they need a minimum sample.
RATE_METRICS = ("service_level", "abandon_rate", "asa_s")
#: The bad direction of each metric.
BAD_WHEN: dict[str, str] = {"service_level": "below", "abandon_rate": "above", "asa_s": "above",
                            "oldest_wait_s": "above", "waiting": "above", "ready_agents_while_waiting": "below"}


class AlertRule(BaseModel):
    """One rule of the centre file's ``alerts.rules`` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    metric: Metric
    threshold: float | Literal["goal"] = Field(
        description="The limit; 'goal' (service_level only) takes each queue's sl_goal.")
    window_minutes: int = Field(15, ge=1, description="Which rolling window of the live figures.")
    min_sample: int = Field(10, ge=0, description="Contacts that left the queue in the window, for rate metrics.")
    for_s: float = Field(60, ge=0, description="The condition must hold this long before firing.")
    hysteresis: float = Field(0.0, ge=0, description="Recovered only this far past the threshold.")
    recover_for_s: float | None = Field(None, ge=0, description="Recovered this long before resolving (default for_s).")
    renotify_s: float = Field(900, gt=0, description="Notify again this often while firing.")
    severity: Literal["info", "warning", "critical"] = "warning"
    tenants: tuple[str, ...] = Field((), description="Only these tenants (empty: all).")
    queues: tuple[str, ...] = Field((), description="Only these queues (empty: all).")
    channels: tuple[str, ...] = Field((), description="Only these channels (empty: all).")
    business_hours_only: bool = Field(False, description="No new alerts outside the tenant's business hours.")

    @model_validator(mode="after")
    def _goal_only_for_sl(self) -> "AlertRule":
        if self.threshold == "goal" and self.metric != "service_level":
            raise ValueError("threshold 'goal' is for service_level rules only")
        return self

    def matches(self, tenant: str, queue: str, channel: str) -> bool:
        if (channel == "*") != (self.metric in QUEUE_METRICS):
            return False  # queue-wide metrics on the queue's "*" group, the others per channel
        return ((not self.tenants or tenant in self.tenants) and (not self.queues or queue in self.queues)
                and (channel == "*" or not self.channels or channel in self.channels))

    def limit(self, q: _HasGoal) -> float:
        return q.sl_goal if self.threshold == "goal" else float(self.threshold)
