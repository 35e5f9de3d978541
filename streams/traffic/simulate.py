"""Seeded contact-centre traffic: a discrete-event simulation that also writes its own truth.

Contacts arrive as a Poisson process whose rate follows staffing and a time-of-day load
curve in each tenant's time zone; they wait in a priority-then-FIFO queue for a free
agent of that queue, and leave when their (exponential) patience runs out first. Agents
work shifts, take breaks and lunch (finishing the contact in hand first), handle one
voice contact or several chats at once, put customers on hold, transfer some to another
queue and do after-call work. Some contacts are rated (CSAT) minutes to days later.

The *truth* -- the interaction record each contact must become -- is taken from the
simulation's own clock (when it queued, was answered, held, ended), not from the stream's
state machine, so the end-to-end tests compare two independent computations.

With ``SimConfig.product()`` (what ``ccpulse demo`` and ``simulate`` send) the centre also runs
an IVR in front of its voice queues -- every voice caller passes it, and some never reach a
queue: served by it, hung up in it, or sent elsewhere -- and outbound campaigns dialled by
their own agents. These draw on a random stream of their own, so the queue contacts, and
every inbound figure, are the same with them or without them; their records are in
``Simulation.truth`` too (direction ``outbound``, outcome ``ivr`` or ``not_connected``).

With ``QueueSpec.service="exponential"``, no hold/transfer/ACW, ``breaks=False`` and a fixed
``arrival_rate_per_s`` the model is exactly Erlang-A (M/M/c+M), for checks against theory.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from streams.domain.state import TYPE_RANK


@dataclass(frozen=True)
class QueueSpec:
    """One queue (skill) and the agents dedicated to it."""

    name: str
    channel: str = "voice"
    agents: int = 8                      # seats staffed on the day shift
    weight: float = 1.0                  # unused when arrival_rate_per_s is set
    mean_talk_s: float = 240.0
    mean_acw_s: float = 45.0
    mean_patience_s: float | None = 150.0  # None: nobody abandons (Erlang C)
    service: str = "lognormal"           # "lognormal" (cv 0.8) or "exponential"
    hold_prob: float = 0.15
    mean_hold_s: float = 45.0
    transfer_prob: float = 0.05          # to another queue of the same tenant
    concurrency: int = 1                 # contacts an agent handles at once (chats: 2-3)
    csat_prob: float = 0.3
    priority_share: float = 0.1          # share of high-priority contacts (served first); 0 = pure FIFO
    load: float = 0.7                    # offered load / capacity at the busiest hour
    arrival_rate_per_s: float | None = None  # fixed Poisson rate instead of staffing x load curve


@dataclass(frozen=True)
class TenantSpec:
    name: str
    timezone: str
    queues: tuple[QueueSpec, ...]


DEFAULT_TENANTS: tuple[TenantSpec, ...] = (
    TenantSpec("acme", "Europe/London", (
        QueueSpec("acme-sales", agents=6, mean_talk_s=300),
        QueueSpec("acme-support", agents=8, mean_talk_s=420, hold_prob=0.25),
        QueueSpec("acme-chat", channel="chat", agents=4, mean_talk_s=600, mean_acw_s=30,
                  mean_patience_s=300, concurrency=2, hold_prob=0.0),
    )),
    TenantSpec("globex", "America/New_York", (
        QueueSpec("globex-billing", agents=5, mean_talk_s=200),
        QueueSpec("globex-chat", channel="chat", agents=3, mean_talk_s=480, mean_acw_s=20,
                  mean_patience_s=240, concurrency=3, hold_prob=0.0, transfer_prob=0.0),
    )),
    TenantSpec("initech", "Europe/Berlin", (
        QueueSpec("initech-helpdesk", agents=4, mean_talk_s=360, mean_patience_s=200),
        QueueSpec("initech-callback", channel="callback", agents=2, mean_talk_s=240, load=0.6,
                  mean_patience_s=None, transfer_prob=0.0),
    )),
)

#: Load through the local day (share of the peak), hour by hour.
DAY_CURVE = (0.35, 0.3, 0.3, 0.3, 0.35, 0.45, 0.6, 0.75, 0.9, 1.0, 1.0, 0.95,
             0.85, 0.9, 0.95, 0.9, 0.85, 0.75, 0.65, 0.55, 0.5, 0.45, 0.4, 0.35)
#: Shifts in local hours: (starts at, seat share). Seats are staffed by share of `agents`.
SHIFTS = ((6, "d", 1.0), (14, "e", 0.6), (22, "n", 0.25))
SHIFT_HOURS = 8
#: Breaks after shift start: (minutes in, minutes long, reason).
BREAKS = ((120, 15, "break"), (240, 30, "lunch"), (390, 15, "break"))
#: Same-millisecond order of agent events around contacts: an agent is ready before the
#: answer it takes, and goes on a break or home after the wrap-up that freed them.
AGENT_RANK = {"agent_login": -2, "agent_ready": -1, "agent_not_ready": 10, "agent_logout": 11}
DISPOSITIONS = ("resolved", "follow_up", "escalated", "information", "complaint")


@dataclass(frozen=True)
class IvrSpec:
    """The IVR every voice caller of a tenant passes, and how many never reach a queue."""

    name: str = "main"
    mean_s: float = 30.0
    #: IVR-only sessions per queued voice caller, by how they ended.
    only: tuple[tuple[str, float], ...] = (("self_served", 0.15), ("hung_up", 0.06), ("transferred_out", 0.02))
    menus: tuple[str, ...] = ("main>billing", "main>support", "main>sales", "main>balance", "intent:opening_hours")


@dataclass(frozen=True)
class CampaignSpec:
    """An outbound campaign of one tenant, dialled by its own agents (not the queues')."""

    tenant: str
    name: str
    agents: int = 3
    attempts_per_hour: float = 90.0
    records: int = 300                   # people on the calling list
    hours: tuple[int, int] = (9, 20)     # local dialling hours
    results: tuple[tuple[str, float], ...] = (("connected", 0.4), ("no_answer", 0.3), ("busy", 0.1),
                                              ("answering_machine", 0.15), ("invalid_number", 0.05))
    right_party: float = 0.85
    conversion: float = 0.3
    mean_talk_s: float = 150.0
    mean_acw_s: float = 30.0


DEFAULT_CAMPAIGNS: tuple[CampaignSpec, ...] = (
    CampaignSpec("acme", "acme-renewals"),
    CampaignSpec("globex", "globex-survey", agents=2, attempts_per_hour=60, conversion=0.6, mean_talk_s=90),
)
OUTBOUND_DISPOSITIONS = {True: "sale", False: "refused"}
TRANSFER_REASONS = ("escalation", "wrong_queue", "language", "technical")
QA_SECTIONS = ("greeting", "accuracy", "compliance", "close")


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    interactions: int = 10_000           # queue contacts (inbound); IVR-only and outbound come on top
    start: datetime = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
    tenants: tuple[TenantSpec, ...] = DEFAULT_TENANTS
    breaks: bool = True
    shifts: bool = True                  # False: every seat staffed all the time
    csat_max_delay_s: float = 2 * 86400
    ivr: IvrSpec | None = None           # None: callers go straight to the queues
    campaigns: tuple[CampaignSpec, ...] = ()
    teams: bool = False                  # agents' logins name their team (and one moves on day 2)
    qa_share: float = 0.0                # share of handled queue contacts a supervisor scores
    qa_max_delay_s: float = 3 * 86400    # scored up to this long after the wrap-up
    transfer_reasons: bool = False       # transfers say why

    @classmethod
    def product(cls, **kw: Any) -> "SimConfig":
        """The whole centre: queues, the IVR in front of them, outbound campaigns, quality
        evaluations and transfer reasons."""
        return cls(**{"ivr": IvrSpec(), "campaigns": DEFAULT_CAMPAIGNS, "qa_share": 0.1,
                      "transfer_reasons": True, "teams": True, **kw})


@dataclass
class Simulation:
    """Events as the contract's JSON dicts, and the intended record per interaction."""

    events: list[dict[str, Any]]
    agent_events: list[dict[str, Any]]
    truth: dict[str, dict[str, Any]]
    config: SimConfig
    end_ms: int = 0


# --- internals ------------------------------------------------------------------------

def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class _Agent:
    agent_id: str
    tenant: str
    queue: "_Queue"
    shift_end: int
    active: int = 0               # contacts held now (talking, on hold or in ACW)
    on_break: bool = False
    logged_in: bool = True
    pending: deque = field(default_factory=deque)  # breaks and logout waiting for an idle moment
    idle_since: int = 0


@dataclass
class _Queue:
    spec: QueueSpec
    tenant: "TenantSpec"
    zone: ZoneInfo
    waiting: list = field(default_factory=list)   # heap of (-priority, arrival seq, contact)
    agents: list = field(default_factory=list)    # logged-in agents


@dataclass
class _Contact:
    iid: str
    tenant: str
    channel: str
    customer_id: str | None
    priority: int
    events: list = field(default_factory=list)
    queues: list = field(default_factory=list)
    queued_since: int | None = None
    offered_at: int | None = None
    answered_at: int | None = None
    abandoned_at: int | None = None
    ended_at: int | None = None
    wrapup_at: int | None = None
    first_response_at: int | None = None
    wait: int = 0
    talk: int = 0
    hold: int = 0
    holds: int = 0
    transfers: int = 0
    agent_id: str | None = None
    first_agent_id: str | None = None
    disposition: str | None = None
    resolved: bool | None = None
    csat: int | None = None
    csat_at: int | None = None
    stint: int = 0                # bumps when the contact leaves a queue: stale patience timers
    transferred: bool = False
    direction: str = "inbound"
    campaign: str | None = None
    record_id: str | None = None
    dialed_at: int | None = None
    dial_result: str | None = None
    right_party: bool | None = None
    converted: bool | None = None
    ivr: str | None = None
    ivr_entered_at: int | None = None
    ivr_left_at: int | None = None
    ivr_result: str | None = None
    ivr_path: list = field(default_factory=list)
    transfer_reasons: list = field(default_factory=list)
    qa_score: float | None = None
    qa_critical: bool | None = None


class _Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rnd = random.Random(cfg.seed)
        self.t0 = int(cfg.start.timestamp() * 1000)
        # Ids carry the simulated day, so another day's demo adds contacts instead of replaying
        # the same ids (which would change nothing); the default day keeps its shorter ids.
        self.day_tag = "" if cfg.start == SimConfig.start else f"d{cfg.start:%Y%m%d%H%M}"
        self.heap: list[tuple[int, int, str, Any]] = []
        self.seq = itertools.count()
        self.agent_events: list[dict[str, Any]] = []
        self.contacts: list[_Contact] = []
        self.agent_event_n = itertools.count(1)
        self.queues: list[_Queue] = [
            _Queue(q, t, ZoneInfo(t.timezone)) for t in cfg.tenants for q in t.queues]
        self.by_name = {(q.tenant.name, q.spec.name): q for q in self.queues}
        self.arrivals_left = cfg.interactions
        self.customers = {t.name: [f"{t.name}-c{i:05d}" for i in range(max(50, cfg.interactions // 4))]
                          for t in cfg.tenants}
        # The IVR and the campaigns draw from their own stream: the queue contacts are the
        # same with them or without them.
        self.rnd2 = random.Random(cfg.seed * 1_000_003 + 17)
        self.extras: list[_Contact] = []
        self.dialer_agents: dict[str, list[list[Any]]] = {}  # campaign -> [[agent id, busy until]]
        self.dialer_event_n = itertools.count(1)

    # scheduling
    def at(self, t: int, kind: str, data: Any) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), kind, data))

    def dur(self, mean_s: float, dist: str = "lognormal", floor_ms: int = 1000) -> int:
        if mean_s <= 0:
            return 0
        if dist == "exponential":
            x = self.rnd.expovariate(1.0 / mean_s)
        else:  # lognormal with cv 0.8: right-skewed like real handle times
            sigma = math.sqrt(math.log(1 + 0.8 ** 2))
            x = self.rnd.lognormvariate(math.log(mean_s) - sigma ** 2 / 2, sigma)
        return max(floor_ms, int(x * 1000))

    # staffing
    def local_hour(self, q: _Queue, t: int) -> float:
        d = datetime.fromtimestamp(t / 1000, tz=q.zone)
        return d.hour + d.minute / 60

    def seats(self, q: _Queue, share: float) -> int:
        return max(1, math.ceil(q.spec.agents * share)) if share else 0

    def capacity_per_s(self, q: _Queue, staffed: int) -> float:
        s = q.spec
        handle = s.mean_talk_s + s.hold_prob * s.mean_hold_s + s.mean_acw_s
        return staffed * s.concurrency / handle

    def staffed_now(self, q: _Queue, t: int) -> int:
        if not self.cfg.shifts:
            return q.spec.agents
        h = self.local_hour(q, t)
        for start, _letter, share in SHIFTS:
            if (h - start) % 24 < SHIFT_HOURS:
                return self.seats(q, share)
        return 0

    def rate(self, q: _Queue, t: int) -> float:
        if q.spec.arrival_rate_per_s is not None:
            return q.spec.arrival_rate_per_s
        curve = DAY_CURVE[int(self.local_hour(q, t)) % 24]
        return q.spec.load * curve * self.capacity_per_s(q, self.staffed_now(q, t))

    def max_rate(self, q: _Queue) -> float:
        if q.spec.arrival_rate_per_s is not None:
            return q.spec.arrival_rate_per_s
        return q.spec.load * self.capacity_per_s(q, q.spec.agents)

    # agent events
    def agent_event(self, t: int, typ: str, a: _Agent, **kw: Any) -> None:
        self.agent_events.append({"type": typ, "event_id": f"{a.agent_id}:s{self.cfg.seed}{self.day_tag}:{next(self.agent_event_n)}",
                                  "ts": _iso(t), "tenant": a.tenant, "agent_id": a.agent_id, **kw})

    def on_login(self, t: int, data: Any) -> None:
        q, agent_id, shift_end = data
        a = _Agent(agent_id, q.tenant.name, q, shift_end, idle_since=t)
        q.agents.append(a)
        self.agent_event(t, "agent_login", a, queues=[q.spec.name], **self.team_of(q, agent_id, t))
        self.agent_event(t + 1, "agent_ready", a)
        if self.cfg.breaks:
            for minutes, length, reason in BREAKS:
                at = t + (minutes + self.rnd.randint(-45, 45)) * 60_000  # staggered, as rota planners do
                if at < shift_end:
                    self.at(at, "break", (a, length, reason))
        self.at(shift_end, "shift_end", a)
        self.at(t + 1, "dispatch", q)

    def team_of(self, q: _Queue, agent_id: str, t: int) -> dict[str, str]:
        """Two teams per queue by seat; seat 00 of each shift moves to team 2 from the second day."""
        if not self.cfg.teams:
            return {}
        seat = int(agent_id[-2:])
        moved = seat == 0 and t - self.t0 >= 86_400_000
        return {"team": f"{q.spec.name}-t{2 if moved else 1 + seat % 2}", "department": q.spec.name.split("-")[-1],
                "site": q.tenant.timezone.split("/")[-1].lower()}

    def idle_moment(self, t: int, a: _Agent) -> None:
        """The agent has nothing in hand: take a pending break or log out."""
        while a.pending and a.active == 0 and not a.on_break and a.logged_in:
            kind, length, reason = a.pending.popleft()
            if kind == "logout":
                a.logged_in = False
                a.queue.agents.remove(a)
                self.agent_event(t, "agent_logout", a)
            else:
                a.on_break = True
                self.agent_event(t, "agent_not_ready", a, reason=reason)
                self.at(t + length * 60_000, "break_end", a)

    def on_break(self, t: int, data: Any) -> None:
        a, length, reason = data
        if a.logged_in:
            a.pending.append(("break", length, reason))
            self.idle_moment(t, a)

    def on_break_end(self, t: int, a: _Agent) -> None:
        a.on_break = False
        a.idle_since = t
        self.agent_event(t, "agent_ready", a)
        self.idle_moment(t, a)
        self.at(t, "dispatch", a.queue)

    def on_shift_end(self, t: int, a: _Agent) -> None:
        if a.logged_in:
            a.pending.append(("logout", 0, ""))
            self.idle_moment(t, a)

    # contacts
    def ev(self, c: _Contact, t: int, typ: str, **kw: Any) -> None:
        c.events.append({"type": typ, "event_id": f"{c.iid}:{len(c.events) + 1}", "ts": _iso(t),
                         "tenant": c.tenant, "interaction_id": c.iid, "channel": c.channel,
                         **{k: v for k, v in kw.items() if v is not None}})

    def on_arrival(self, t: int, q: _Queue) -> None:
        if self.arrivals_left <= 0:
            return
        # Thinning: candidate arrivals at the peak rate, kept with probability rate(t)/peak.
        peak = self.max_rate(q)
        self.at(t + max(1, int(self.rnd.expovariate(peak) * 1000)), "arrival", q)
        if self.rnd.random() * peak > self.rate(q, t):
            return
        self.arrivals_left -= 1
        n = len(self.contacts) + 1
        cust = self.rnd.choice(self.customers[q.tenant.name]) if self.rnd.random() < 0.85 else None
        c = _Contact(f"{q.tenant.name}-s{self.cfg.seed}{self.day_tag}-{n:07d}", q.tenant.name, q.spec.channel, cust,
                     2 if self.rnd.random() < q.spec.priority_share else 0)
        self.contacts.append(c)
        if self.cfg.ivr is not None and q.spec.channel == "voice":
            self.through_ivr(t, q, c)
        c.offered_at = t
        self.ev(c, t, "offered", queue=q.spec.name, customer_id=cust, priority=c.priority)
        self.enqueue(t, q, c)

    # the IVR
    def ivr_session(self, c: _Contact, entered: int, left: int, result: str) -> None:
        spec = self.cfg.ivr
        assert spec is not None
        c.ivr, c.ivr_entered_at, c.ivr_left_at, c.ivr_result = spec.name, entered, left, result
        self.ev(c, entered, "ivr_entered", ivr=spec.name)
        for i in range(self.rnd2.randint(1, 2)):
            step = self.rnd2.choice(spec.menus)
            c.ivr_path.append(step)
            self.ev(c, entered + (left - entered) * (i + 1) // 3, "ivr_step", step=step)
        self.ev(c, left, "ivr_left", result=result)

    def through_ivr(self, t: int, q: _Queue, c: _Contact) -> None:
        """The queued caller's IVR before the offer, and now and then a caller who never queues."""
        spec = self.cfg.ivr
        assert spec is not None
        d = max(3_000, int(self.rnd2.expovariate(1.0 / spec.mean_s) * 1000))
        self.ivr_session(c, t - d, t - 1, "to_queue")  # left 1 ms before the offer
        x = self.rnd2.random()
        for result, share in spec.only:
            if x < share:
                o = _Contact(f"{c.tenant}-s{self.cfg.seed}{self.day_tag}-ivr{len(self.extras) + 1:07d}", c.tenant, "voice", None, 0)
                entered = t + self.rnd2.randint(0, 60_000)
                self.ivr_session(o, entered, entered + max(3_000, int(self.rnd2.expovariate(1.0 / spec.mean_s) * 1000)),
                                 result)
                self.extras.append(o)
                return
            x -= share

    # outbound
    def on_dial(self, t: int, camp: CampaignSpec) -> None:
        if self.arrivals_left <= 0:
            return  # the campaign stops with the inbound traffic
        rnd = self.rnd2
        self.at(t + max(1, int(rnd.expovariate(camp.attempts_per_hour / 3600) * 1000)), "dial", camp)
        zone = ZoneInfo(next(x.timezone for x in self.cfg.tenants if x.name == camp.tenant))
        if not camp.hours[0] <= datetime.fromtimestamp(t / 1000, tz=zone).hour < camp.hours[1]:
            return
        agents = self.dialer_agents.setdefault(camp.name, [[f"{camp.name}.o{i:02d}", 0] for i in range(camp.agents)])
        c = _Contact(f"{camp.tenant}-s{self.cfg.seed}{self.day_tag}-out{len(self.extras) + 1:07d}", camp.tenant, "voice", None, 0)
        c.direction, c.campaign, c.dialed_at = "outbound", camp.name, t
        c.record_id = f"{camp.name}-r{rnd.randrange(camp.records):05d}"
        self.ev(c, t, "dialed", campaign=camp.name, list_id=f"{camp.name}-list", record_id=c.record_id)
        x, result = rnd.random(), "no_answer"
        for name, share in camp.results:
            if x < share:
                result = name
                break
            x -= share
        rang = t + rnd.randint(5_000, 25_000)
        free = [a for a in agents if a[1] <= rang]
        if result == "connected" and not free:
            result = "dialer_abandoned"
        c.dial_result = result
        self.ev(c, rang, "dial_result", result=result)
        if result == "connected":
            a = min(free, key=lambda x: x[1])
            c.answered_at, c.agent_id, c.first_agent_id = rang, a[0], a[0]
            self.ev(c, rang, "answered", agent_id=a[0])
            talk = max(5_000, int(rnd.expovariate(1.0 / camp.mean_talk_s) * 1000))
            c.talk, c.ended_at = talk, rang + talk
            self.ev(c, c.ended_at, "ended", agent_id=a[0], recording=f"rec-{c.iid}")
            c.wrapup_at = c.ended_at + max(1_000, int(rnd.expovariate(1.0 / camp.mean_acw_s) * 1000))
            c.right_party = rnd.random() < camp.right_party
            c.converted = c.right_party and rnd.random() < camp.conversion
            c.disposition = OUTBOUND_DISPOSITIONS[c.converted] if c.right_party else "wrong_party"
            self.ev(c, c.wrapup_at, "wrapup_ended", agent_id=a[0], disposition=c.disposition,
                    right_party=c.right_party, converted=c.converted)
            a[1] = c.wrapup_at
        self.extras.append(c)

    def enqueue(self, t: int, q: _Queue, c: _Contact) -> None:
        if not c.queues or c.queues[-1] != q.spec.name:
            c.queues.append(q.spec.name)
        if c.queued_since is None:
            c.queued_since = t
        heapq.heappush(q.waiting, (-c.priority, next(self.seq), c))
        patience = q.spec.mean_patience_s
        if patience is not None and not c.transferred:
            self.at(t + max(1, int(self.rnd.expovariate(1.0 / patience) * 1000)), "abandon", (q, c, c.stint))
        self.at(t, "dispatch", q)

    def on_abandon(self, t: int, data: Any) -> None:
        q, c, stint = data
        if c.stint != stint or c.answered_at is not None:
            return  # answered (or moved on) before patience ran out
        q.waiting = [w for w in q.waiting if w[2] is not c]
        heapq.heapify(q.waiting)
        c.stint += 1
        c.wait += t - c.queued_since
        c.queued_since = None
        c.abandoned_at = t
        self.ev(c, t, "abandoned", queue=q.spec.name)

    def free_agent(self, q: _Queue) -> _Agent | None:
        """Longest-idle agent with a free slot who is not on (or due for) a break."""
        best = None
        for a in q.agents:
            if a.on_break or a.pending or a.active >= q.spec.concurrency:
                continue
            if best is None or (a.active, a.idle_since) < (best.active, best.idle_since):
                best = a
        return best

    def on_dispatch(self, t: int, q: _Queue) -> None:
        while q.waiting:
            a = self.free_agent(q)
            if a is None:
                return
            _, _, c = heapq.heappop(q.waiting)
            self.answer(t, q, a, c)

    def answer(self, t: int, q: _Queue, a: _Agent, c: _Contact) -> None:
        s = q.spec
        c.stint += 1
        c.wait += t - c.queued_since
        c.queued_since = None
        if c.answered_at is None:
            c.answered_at, c.first_agent_id = t, a.agent_id
        c.agent_id = a.agent_id
        a.active += 1
        self.ev(c, t, "answered", agent_id=a.agent_id, queue=s.name)
        now = t
        talk = self.dur(s.mean_talk_s, s.service)
        if c.channel in ("chat", "social", "email") and c.first_response_at is None:
            c.first_response_at = now + min(talk // 2, self.rnd.randint(3_000, 45_000))
            self.ev(c, c.first_response_at, "first_response", agent_id=a.agent_id)
        if self.rnd.random() < s.hold_prob:
            before = max(1000, int(talk * self.rnd.uniform(0.2, 0.6)))
            hold = self.dur(s.mean_hold_s, s.service)
            self.ev(c, now + before, "hold_started", agent_id=a.agent_id)
            self.ev(c, now + before + hold, "hold_ended", agent_id=a.agent_id)
            c.holds += 1
            c.hold += hold
            now += hold
        now += talk
        c.talk += talk
        others = [x for x in self.queues if x.tenant is q.tenant and x is not q and x.spec.channel == c.channel]
        if others and not c.transferred and self.rnd.random() < s.transfer_prob:
            self.at(now, "transfer", (q, a, c, self.rnd.choice(others)))
        else:
            self.at(now, "end", (q, a, c))

    def release(self, t: int, q: _Queue, a: _Agent) -> None:
        a.active -= 1
        if a.active == 0:
            a.idle_since = t
            self.idle_moment(t, a)
        self.at(t, "dispatch", q)

    def on_transfer(self, t: int, data: Any) -> None:
        q, a, c, to = data
        c.transfers += 1
        c.transferred = True
        reason = self.rnd2.choice(TRANSFER_REASONS) if self.cfg.transfer_reasons else None
        if reason:
            c.transfer_reasons.append(reason)
        self.ev(c, t, "transferred", to_queue=to.spec.name, agent_id=a.agent_id, reason=reason)
        # Re-queued from the transfer's instant; offered 1 ms later so an immediate answer
        # can never tie with the transfer.
        c.queued_since = t
        self.ev(c, t + 1, "offered", queue=to.spec.name, customer_id=c.customer_id, priority=c.priority)
        self.release(t, q, a)
        self.at(t + 1, "requeue", (to, c))

    def on_requeue(self, t: int, data: Any) -> None:
        to, c = data
        queued_since = c.queued_since
        self.enqueue(t, to, c)
        c.queued_since = queued_since

    def on_end(self, t: int, data: Any) -> None:
        q, a, c = data
        c.ended_at = t
        self.ev(c, t, "ended", agent_id=a.agent_id)
        self.at(t + self.dur(q.spec.mean_acw_s, q.spec.service, floor_ms=0), "wrapup", (q, a, c))

    def on_wrapup(self, t: int, data: Any) -> None:
        q, a, c = data
        c.wrapup_at = t
        c.disposition = self.rnd.choice(DISPOSITIONS)
        c.resolved = c.disposition in ("resolved", "information") or self.rnd.random() < 0.2
        self.ev(c, t, "wrapup_ended", agent_id=a.agent_id, disposition=c.disposition, resolved=c.resolved)
        if self.rnd.random() < q.spec.csat_prob:
            # Long waits and unresolved contacts rate lower.
            base = 4.6 - min(2.0, c.wait / 240_000) - (0.0 if c.resolved else 1.2)
            c.csat = min(5, max(1, round(self.rnd.gauss(base, 0.8))))
            c.csat_at = t + self.rnd.randint(60_000, int(self.cfg.csat_max_delay_s * 1000))
            self.ev(c, c.csat_at, "csat", score=c.csat)
        if self.cfg.qa_share and self.rnd2.random() < self.cfg.qa_share:
            self.evaluate(t, c, a.agent_id)
        self.release(t, q, a)

    def evaluate(self, t: int, c: _Contact, agent: str) -> None:
        """A supervisor scores the recording, a minute to ``qa_max_delay_s`` later."""
        rnd = self.rnd2
        sections = {s: float(rnd.randint(50, 100)) for s in QA_SECTIONS}
        c.qa_score = round(sum(sections.values()) / len(sections), 4)
        c.qa_critical = rnd.random() < 0.05
        self.ev(c, t + rnd.randint(60_000, max(60_000, int(self.cfg.qa_max_delay_s * 1000))), "qa_evaluated", agent_id=agent,
                evaluator=f"{c.tenant}-qa1", form=f"{c.channel}-standard", score=c.qa_score, sections=sections,
                critical_failure=c.qa_critical)

    def run(self) -> Simulation:
        for q in self.queues:
            self.at(self.t0, "arrival", q)
        for camp in self.cfg.campaigns:
            self.at(self.t0, "dial", camp)
        handlers = {
            "dial": self.on_dial,
            "arrival": self.on_arrival, "abandon": self.on_abandon, "dispatch": self.on_dispatch,
            "transfer": self.on_transfer, "requeue": self.on_requeue, "end": self.on_end,
            "wrapup": self.on_wrapup, "login": self.on_login, "break": self.on_break,
            "break_end": self.on_break_end, "shift_end": self.on_shift_end,
        }
        next_day = self.t0  # shifts that begin before this are scheduled
        last = self.t0
        while self.heap:
            t = self.heap[0][0]
            if t >= next_day - 43_200_000:
                # Lay shifts out a day at a time, half a day ahead of the clock.
                for q in self.queues:
                    self.schedule_shifts_day(q, next_day)
                next_day += 86_400_000
                continue
            t, _, kind, data = heapq.heappop(self.heap)
            handlers[kind](t, data)
            last = max(last, t)
            if self.arrivals_left <= 0 and not self.busy():
                break
        # Everyone still logged in goes home when the last contact is done.
        for q in self.queues:
            for a in list(q.agents):
                if a.on_break:
                    self.agent_event(last + 1, "agent_ready", a)
                self.agent_event(last + 2, "agent_logout", a)
        self.dialer_shifts(last)
        return self.result(last)

    def dialer_shifts(self, last: int) -> None:
        """The campaign agents: logged in and ready from the start, out after their last call."""
        for camp in self.cfg.campaigns:
            for agent, busy_until in self.dialer_agents.get(camp.name, []):
                def event(t: int, typ: str, **kw: Any) -> None:
                    self.agent_events.append({"type": typ, "event_id": f"{agent}:s{self.cfg.seed}{self.day_tag}:d{next(self.dialer_event_n)}",
                                              "ts": _iso(t), "tenant": camp.tenant, "agent_id": agent, **kw})
                event(self.t0 - 60_000, "agent_login", queues=[])
                event(self.t0 - 59_999, "agent_ready")
                event(max(last, busy_until) + 2, "agent_logout")

    def schedule_shifts_day(self, q: _Queue, day_start_ms: int) -> None:
        """Shifts that begin in the 24 h from ``day_start_ms`` (and, once, those running at t0)."""
        if not self.cfg.shifts:
            if day_start_ms == self.t0:
                for seat in range(q.spec.agents):
                    self.at(self.t0 - 60_000, "login", (q, f"{q.spec.name}.a{seat:02d}", 10 ** 15))
            return
        lo, hi = day_start_ms, day_start_ms + 86_400_000
        if day_start_ms == self.t0:
            lo -= SHIFT_HOURS * 3_600_000  # shifts already running at the start
        day = datetime.fromtimestamp(lo / 1000, tz=q.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        while int(day.timestamp() * 1000) < hi:
            for start, letter, share in SHIFTS:
                b_dt = day.replace(hour=start)
                b = int(b_dt.timestamp() * 1000)
                if not lo <= b < hi:
                    continue
                e = int((b_dt + timedelta(hours=SHIFT_HOURS)).timestamp() * 1000)
                for seat in range(self.seats(q, share)):
                    jitter = self.rnd.randint(-300, 120) * 1000  # a few minutes early or late
                    self.at(max(b + jitter, self.t0 - 60_000), "login",
                            (q, f"{q.spec.name}.{letter}{seat:02d}", e + jitter))
            day = (day + timedelta(days=1, hours=2)).replace(hour=0)

    def busy(self) -> bool:
        return any(q.waiting for q in self.queues) or any(a.active for q in self.queues for a in q.agents)

    def result(self, end: int) -> Simulation:
        events: list[dict[str, Any]] = []
        truth: dict[str, dict[str, Any]] = {}
        for c in self.contacts + self.extras:
            events.extend(c.events)
            truth[c.iid] = self.record(c)
        return Simulation(events, self.agent_events, truth, self.cfg, end)

    @staticmethod
    def record(c: _Contact) -> dict[str, Any]:
        """The record the stream must produce, from the simulation's own clock."""
        answered = c.answered_at is not None
        last = max(int(datetime.fromisoformat(e["ts"]).timestamp() * 1000) for e in c.events)
        if answered:
            outcome = "answered"
        elif c.abandoned_at is not None:
            outcome = "abandoned"
        else:
            outcome = "ivr" if c.ivr_result not in (None, "to_queue") else "not_connected"
        return {
            "interaction_id": c.iid, "tenant": c.tenant, "channel": c.channel,
            "queue": c.queues[-1] if c.queues else None, "first_queue": c.queues[0] if c.queues else None,
            "queues": list(c.queues),
            "customer_id": c.customer_id, "priority": c.priority,
            "agent_id": c.agent_id, "first_agent_id": c.first_agent_id,
            "offered_at_ms": c.offered_at, "answered_at_ms": c.answered_at,
            "abandoned_at_ms": None if answered else c.abandoned_at,
            "ended_at_ms": c.ended_at, "wrapup_ended_at_ms": c.wrapup_at,
            "first_response_at_ms": c.first_response_at, "last_event_at_ms": last,
            "wait_ms": c.wait, "talk_ms": c.talk, "hold_ms": c.hold,
            "acw_ms": (c.wrapup_at - c.ended_at) if c.wrapup_at is not None else 0,
            "holds": c.holds, "transfers": c.transfers,
            "outcome": outcome,
            "disposition": c.disposition, "resolved": c.resolved,
            "csat": c.csat, "csat_at_ms": c.csat_at, "closed_by_timeout": False, "anomalies": [],
            "n_events": len(c.events), "version": 2 * len(c.events),
            "direction": "callback" if c.channel == "callback" else c.direction, "campaign": c.campaign, "list_id": f"{c.campaign}-list" if c.campaign else None,
            "record_id": c.record_id, "dialed_at_ms": c.dialed_at, "dial_result": c.dial_result,
            "right_party": c.right_party, "converted": c.converted, "ivr": c.ivr,
            "ivr_entered_at_ms": c.ivr_entered_at,
            "ivr_ms": (c.ivr_left_at - c.ivr_entered_at) if c.ivr_entered_at is not None else 0,
            "ivr_result": c.ivr_result, "ivr_path": list(c.ivr_path), "transfer_reasons": list(c.transfer_reasons),
            "recording": f"rec-{c.iid}" if c.direction == "outbound" and answered else None,
            "qa_evaluations": int(c.qa_score is not None), "qa_score": c.qa_score, "qa_critical": c.qa_critical,
        }


def simulate(cfg: SimConfig) -> Simulation:
    """Run the simulation; the same config (seed included) gives the same traffic."""
    if cfg.interactions < 0:
        raise ValueError("interactions must be >= 0")
    return _Sim(cfg).run()


def event_time_order(sim: Simulation) -> list[dict[str, Any]]:
    """Every event (interaction and agent) in event-time order, lifecycle order on ties."""
    def key(e: dict[str, Any]) -> tuple[str, int]:
        return e["ts"], TYPE_RANK.get(e["type"]) if e["type"] in TYPE_RANK else AGENT_RANK[e["type"]]
    return sorted(sim.events + sim.agent_events, key=key)


def iter_live(sim: Simulation) -> Iterator[tuple[int, dict[str, Any]]]:
    """(event time ms, event) in time order, for pacing a live replay."""
    for e in event_time_order(sim):
        yield int(datetime.fromisoformat(e["ts"]).timestamp() * 1000), e
