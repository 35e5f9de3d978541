"""SLA alert rules and their lifecycle, pure: figures in, alert transitions out.

A rule watches one metric of the live figures of each (tenant, queue, channel) it matches.
An episode goes ok → pending (the condition holds, waiting ``for_s``) → firing (notify; again
every ``renotify_s``) → recovering (the value is back past the threshold by the hysteresis
margin, waiting ``recover_for_s``) → resolved (notify) → ok. No alert from a handful of
contacts: rate metrics need ``min_sample`` contacts that left the queue in the window.

The alert id is derived from the rule, the group and the episode's start, so recomputing
the same episode after a restart gives the same id: deliveries downstream de-duplicate on
it. The state per (rule, group) is a small JSON-able dict the worker keeps in a
changelog-backed table.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from streams.domain import kpi
from streams.config.rules import BAD_WHEN, QUEUE_METRICS, RATE_METRICS, AlertRule, Metric  # noqa: F401 -- the rule's home

if TYPE_CHECKING:
    from streams.config.centre import QueueConfig


@dataclass(frozen=True)
class Figures:
    """What a rule can read of one group's live window."""

    counts: Mapping[str, int]
    waiting: int
    oldest_wait_s: float
    ready_agents: int | None = None  # queue-wide groups only

    @classmethod
    def of(cls, vec: list[int], waiting: int, oldest_wait_s: float, ready_agents: int | None = None) -> "Figures":
        return cls(kpi.as_dict(vec), waiting, oldest_wait_s, ready_agents)


def value_of(metric: str, f: Figures, q: QueueConfig) -> tuple[float | None, int | None]:
    """(value, sample size) of a metric; sample None where no minimum applies."""
    left = f.counts["answered"] + f.counts["abandoned"]
    if metric == "service_level":
        return kpi.service_level(f.counts, q.sl_variant), left
    if metric == "abandon_rate":
        return kpi.abandon_rate(f.counts), left
    if metric == "asa_s":
        return kpi.asa_s(f.counts), f.counts["answered"]
    if metric == "oldest_wait_s":
        return f.oldest_wait_s, None
    if metric == "ready_agents_while_waiting":
        if f.ready_agents is None:
            return None, None  # no agent figures yet: no data
        # Nobody waiting: nothing to staff, the condition cannot hold (infinitely "enough").
        return (float(f.ready_agents) if f.waiting > 0 else float("inf")), None
    return float(f.waiting), None


@dataclass(frozen=True)
class Transition:
    """Something to tell people: a new, repeated or resolved alert."""

    status: Literal["firing", "resolved"]
    alert_id: str
    rule: str
    severity: str
    metric: str
    value: float | None
    threshold: float
    started_at_ms: int
    at_ms: int
    renotify: bool = False


def new_alert_state() -> dict[str, Any]:
    return {"s": "ok", "since": 0, "id": None, "start": 0, "notified": 0, "value": None}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def alert_id(rule: str, tenant: str, queue: str, channel: str, start_ms: int) -> str:
    return f"{rule}/{tenant}/{queue}/{channel}/{_iso(start_ms)}"


def step(rule: AlertRule, st: dict[str, Any], group: tuple[str, str, str], f: Figures, q: QueueConfig,
         now_ms: int, open_now: bool = True) -> Transition | None:
    """Advance one (rule, group) state to ``now_ms`` (in place); the transition to notify, if any."""
    value, sample = value_of(rule.metric, f, q)
    limit = rule.limit(q)
    bad_below = BAD_WHEN[rule.metric] == "below"
    known = value is not None and (sample is None or sample >= rule.min_sample)
    breach = known and (value < limit if bad_below else value > limit)  # type: ignore[operator]
    recovered = known and (value >= limit + rule.hysteresis if bad_below  # type: ignore[operator]
                           else value <= limit - rule.hysteresis)  # type: ignore[operator]
    st["value"] = value
    recover_for = rule.for_s if rule.recover_for_s is None else rule.recover_for_s

    def fire(renotify: bool) -> Transition:
        st["notified"] = now_ms
        return Transition("firing", st["id"], rule.name, rule.severity, rule.metric, value, limit,
                          st["start"], now_ms, renotify)

    s = st["s"]
    if s == "ok":
        if breach and (open_now or not rule.business_hours_only):
            st["s"], st["since"], st["start"] = "pending", now_ms, now_ms
            s = "pending"
        else:
            return None
    if s == "pending":
        if not breach:
            st["s"] = "ok"
            return None
        if now_ms - st["since"] >= rule.for_s * 1000:
            st["s"] = "firing"
            st["id"] = alert_id(rule.name, *group, st["start"])
            return fire(False)
        return None
    if s == "firing":
        if recovered:
            st["s"], st["since"] = "recovering", now_ms
            s = "recovering"
        elif now_ms - st["notified"] >= rule.renotify_s * 1000:
            return fire(True)
        else:
            return None
    if s == "recovering":
        if breach or not recovered and known:
            st["s"] = "firing"  # back in breach: the same episode, no new notification
            return None
        if recovered and now_ms - st["since"] >= recover_for * 1000:
            done = Transition("resolved", st["id"], rule.name, rule.severity, rule.metric, value, limit,
                              st["start"], now_ms)
            st.update(new_alert_state())
            return done
    return None


# --- one queue's live figures, as the alerting flow holds them ---------------------------------

def live_parts(live: Iterable[tuple[int, tuple[str, str, str], int, kpi.Vector, int, int | None, int]],
               rule_windows: set[int], queue_wide: bool, first_window: int) -> list[tuple[list[str], dict[str, Any]]]:
    """What one worker sends to the alerting flow (the live-parts topic): per partition and
    group, the windows some rule reads, and for queue-wide rules the contacts waiting in the
    whole queue (group channel ``*``, window 0). ``live`` rows are (partition, group, window,
    counts, waiting, oldest waiting since, now), as ``PartitionKpis.live`` gives them."""
    out: list[tuple[list[str], dict[str, Any]]] = []
    queue: dict[tuple[int, str, str], list[Any]] = {}
    for p, group, window, vec, waiting, oldest, now in live:
        if window in rule_windows:
            out.append((list(group), {"p": p, "w": window, "v": vec, "n": waiting, "o": oldest, "t": now}))
        if queue_wide:
            q = queue.setdefault((p, group[0], group[1]), [0, None, now])
            if window == first_window:  # each window row repeats the contacts waiting
                q[0] += waiting
                q[1] = oldest if q[1] is None or (oldest is not None and oldest < q[1]) else q[1]
    for (p, tenant, queue_), (waiting, oldest, now) in queue.items():
        out.append(([tenant, queue_, "*"], {"p": p, "w": 0, "v": kpi.zero(), "n": waiting, "o": oldest, "t": now}))
    return out


def new_group_state() -> dict[str, Any]:
    """What the alert table keeps per (tenant, queue, channel): the latest live part of each
    source partition and window, ready agents per agents partition, and each rule's state."""
    return {"parts": {}, "rules": {}}


def take_live_part(st: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Fold one message of the live-parts topic in; an older part than the one held is ignored
    (parts of one partition arrive in order, but a replay after a crash repeats them)."""
    if "ap" in part:  # ready agents of one agents partition
        agents = st.setdefault("agents", {})
        cur = agents.get(str(part["ap"]))
        if cur is None or cur[1] <= part["t"]:
            agents[str(part["ap"])] = [part["r"], part["t"]]
        return
    slot = f"{part['p']}:{part['w']}"
    cur = st["parts"].get(slot)
    if cur is None or cur[4] <= part["t"]:
        st["parts"][slot] = [part["w"], kpi.upgrade(part["v"]), part["n"], part["o"], part["t"]]


def evaluate_group(centre: Any, group: tuple[str, str, str], st: dict[str, Any]) -> list[dict[str, Any]]:
    """Sum the partitions' live figures of one queue and step every matching rule; the
    notifications of the transitions, as the alerts topic carries them."""
    from zoneinfo import ZoneInfo

    tenant, queue, channel = group
    parts = st["parts"].values()
    if not parts:
        return []
    now = max(pt[4] for pt in parts)
    agents = st.get("agents")
    ready = sum(a[0] for a in agents.values()) if agents else None
    q = centre.queue(tenant, queue)
    tc = centre.tenant(tenant)
    local = datetime.fromtimestamp(now / 1000, tz=ZoneInfo(tc.timezone))
    open_now = tc.is_open(local.weekday(), local.hour * 60 + local.minute)
    out = []
    for rule in centre.alerts.rules:
        if not rule.matches(tenant, queue, channel):
            continue
        vec, waiting, oldest = kpi.zero(), 0, None
        window = 0 if rule.metric in QUEUE_METRICS else rule.window_minutes
        for w, v, n, o, _t in parts:
            if w == window:
                kpi.add(vec, v)
                waiting += n
                oldest = o if oldest is None or (o is not None and o < oldest) else oldest
        figs = Figures.of(vec, waiting, (now - oldest) / 1000 if oldest else 0.0, ready)
        rst = st["rules"].setdefault(rule.name, new_alert_state())
        tr = step(rule, rst, (tenant, queue, channel), figs, q, now, open_now)
        if tr:
            value = "n/a" if tr.value is None else f"{tr.value:.3g}"
            out.append({
                "alert_id": tr.alert_id, "rule": tr.rule, "severity": tr.severity, "status": tr.status,
                "tenant": tenant, "queue": queue, "channel": channel, "metric": tr.metric, "value": tr.value,
                "threshold": tr.threshold, "started_at_ms": tr.started_at_ms, "at_ms": tr.at_ms,
                "renotify": tr.renotify,
                "summary": f"{tr.metric} {value} vs {tr.threshold:g} on {tenant}/{queue}/{channel} ({tr.status})",
            })
    return out
