"""The centre's own configuration: tenants, queues and windows, from one YAML file.

Kept apart from the deployment settings (streams/config/settings.py): a supervisor changes an SL
goal here, an operator changes the broker there. Every queue setting has a default, so an
unknown queue still gets figures; a tenant or queue named here overrides the defaults.

    defaults: {sl_threshold_s: 20, sl_goal: 0.8, sl_variant: abandons_count_against,
               short_abandon_s: 5, fcr_days: 7}
    tenants:
      acme:
        timezone: Europe/London
        daily_reset: "06:00"
        business_hours: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
        queues:
          acme-sales: {sl_threshold_s: 30, sl_goal: 0.9}
    windows: {rolling_minutes: [5, 15, 60], refresh_s: 5, lateness_s: 259200}
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from streams.config.rules import AlertRule
from streams.config.settings import ConfigError  # one error type for every configuration problem

SlVariant = Literal["abandons_count_against", "ignore_abandons", "abandons_within_t_ok",
                    "abandons_within_t_ignored"]
SL_VARIANTS: tuple[str, ...] = ("abandons_count_against", "ignore_abandons", "abandons_within_t_ok",
                                "abandons_within_t_ignored")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The complete, commented example in the repository: the demo's and docker-compose's centre
#: file when none is configured (never the worker's default: an unset file means all defaults).
EXAMPLE_CENTRE = Path(__file__).resolve().parents[2] / "centre.example.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueConfig(_Strict):
    """How one queue's service is measured (kpi-definitions.md)."""

    sl_threshold_s: int = Field(20, ge=1, le=86_400, description="T of 'answered within T seconds'.")
    sl_goal: float = Field(0.8, gt=0, le=1, description="Target share, 0.8 for 80/20.")
    sl_variant: SlVariant = Field("abandons_count_against", description="Which SL formula (kpi-definitions.md).")
    short_abandon_s: int = Field(5, ge=0, le=3600, description="Abandons within this are misdials: excluded.")
    fcr_days: int = Field(7, ge=1, le=90, description="A repeat contact within this many days is not FCR.")


class QueueOverride(_Strict):
    sl_threshold_s: int | None = Field(None, ge=1, le=86_400)
    sl_goal: float | None = Field(None, gt=0, le=1)
    sl_variant: SlVariant | None = None
    short_abandon_s: int | None = Field(None, ge=0, le=3600)
    fcr_days: int | None = Field(None, ge=1, le=90)


class TeamConfig(_Strict):
    """A team of agents, for agents whose logins do not name their team."""

    department: str | None = Field(None, max_length=128)
    site: str | None = Field(None, max_length=128)
    agents: tuple[str, ...] = Field((), description="Agent ids, as the platform names them.")


class BillingConfig(_Strict):
    """What the client pays for, as its contract says (``ccpulse report client``)."""

    unit: Literal["contact", "talk_minute"] = Field("contact", description="Per handled contact, or per talk minute.")
    rounding: Literal["second", "started_minute"] = Field(
        "second", description="Talk minutes to the second, or each contact's talk rounded up to the minute.")
    rate: float = Field(0.0, ge=0, description="Price per unit.")
    currency: str = Field("EUR", min_length=1, max_length=8)
    sl_goal: float | None = Field(None, gt=0, le=1, description="The contract's service-level goal over the month "
                                                                  "(default: the tenant's queue default goal).")


class TenantConfig(_Strict):
    timezone: str = "UTC"
    daily_reset: time = Field(time(0, 0), description="'Today' starts here, in the tenant's time zone.")
    business_hours: dict[str, str] = Field(default_factory=dict,
                                           description="e.g. {mon-fri: '08:00-18:00'}; empty = always open.")
    queue_defaults: QueueOverride = QueueOverride()
    queues: dict[str, QueueOverride] = Field(default_factory=dict)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    billing: BillingConfig = BillingConfig()

    @field_validator("teams")
    @classmethod
    def _one_team_each(cls, v: dict[str, TeamConfig]) -> dict[str, TeamConfig]:
        seen: dict[str, str] = {}
        for name, team in v.items():
            for agent in team.agents:
                if agent in seen:
                    raise ValueError(f"agent {agent!r} is in teams {seen[agent]!r} and {name!r}: one team each")
                seen[agent] = name
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/London)") from None
        return v

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, v: dict[str, str]) -> dict[str, str]:
        for days, span in v.items():
            _day_range(days)
            _span(span)
        return v

    def business_day(self, ts_ms: int) -> date:
        """The tenant's day a moment belongs to: its time zone, shifted by the daily reset."""
        local = datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(self.timezone))
        reset = timedelta(hours=self.daily_reset.hour, minutes=self.daily_reset.minute)
        return (local - reset).date()

    def is_open(self, weekday: int, minute_of_day: int) -> bool:
        """Business hours at a local weekday (0 = Monday) and minute; always open when unset."""
        if not self.business_hours:
            return True
        for days, span in self.business_hours.items():
            if weekday in _day_range(days):
                start, end = _span(span)
                if start <= minute_of_day < end:
                    return True
        return False


def _day_range(s: str) -> list[int]:
    parts = s.lower().split("-")
    if not all(p in _DAYS for p in parts) or len(parts) > 2:
        raise ValueError(f"{s!r}: days are mon..sun or a range such as mon-fri")
    a, b = _DAYS.index(parts[0]), _DAYS.index(parts[-1])
    return list(range(a, b + 1)) if a <= b else list(range(a, 7)) + list(range(0, b + 1))


def _span(s: str) -> tuple[int, int]:
    try:
        a, b = s.split("-")
        (h1, m1), (h2, m2) = (map(int, a.split(":")), map(int, b.split(":")))
    except ValueError:
        raise ValueError(f"{s!r}: hours look like 08:00-18:00") from None
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not 0 <= start < end <= 24 * 60:
        raise ValueError(f"{s!r}: the end must come after the start, within one day")
    return start, end


class WindowConfig(_Strict):
    rolling_minutes: tuple[int, ...] = Field((5, 15, 60), description="Live windows, in minutes.")
    refresh_s: float = Field(1.0, gt=0, le=3600, description="How often live figures (and alert rules) are recomputed.")
    lateness_s: int = Field(3 * 86_400, ge=0, description="Events this late still correct the interval figures.")

    @field_validator("rolling_minutes")
    @classmethod
    def _rolling(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(m < 1 or m > 24 * 60 for m in v):
            raise ValueError("rolling windows are 1..1440 minutes, at least one")
        return tuple(sorted(set(v)))


class AlertsConfig(_Strict):
    rules: tuple[AlertRule, ...] = ()


class OutboundConfig(_Strict):
    """The regulated limit on dropped outbound calls (a Grafana rule per campaign watches it)."""

    dialer_abandon_limit: float = Field(0.03, gt=0, le=1, description="Dialer-abandoned / connects: 3 % is "
                                                                        "Ofcom's (UK) and the US TSR's limit.")
    window_hours: int = Field(24, ge=1, le=24 * 31, description="Over this many hours (Ofcom: 24 h per campaign).")
    min_connects: int = Field(20, ge=1, description="Connects in the window before the rate is judged.")


class AsteriskSource(_Strict):
    queue_log: Path = Field(description="The queue_log file, followed as it grows.")
    tenant: str = Field(min_length=1, max_length=128)


class AmazonConnectSource(_Strict):
    ctr: Path = Field(description="The folder Kinesis Data Firehose's contact trace records land in.")
    tenant: str = Field(min_length=1, max_length=128)


class ConnectorsConfig(_Strict):
    """The platforms ``ccpulse connect run`` reads (docs/connectors/)."""

    asterisk: tuple[AsteriskSource, ...] = ()
    amazon_connect: tuple[AmazonConnectSource, ...] = ()


class StaffingAlerts(_Strict):
    """The Grafana rules on staffing (grafana/provisioning/alerting)."""

    short_by: int = Field(1, ge=1, description="Fire when the next 30 minutes need this many agents more than are "
                                              "available now.")
    forecast_miss: float = Field(0.3, gt=0, description="Fire when the last two hours' contacts differ from the "
                                                        "forecast by more than this share.")
    min_forecast: int = Field(20, ge=1, description="Contacts forecast in those two hours before a miss is judged.")


class CentreConfig(_Strict):
    defaults: QueueConfig = QueueConfig()
    alerts: AlertsConfig = AlertsConfig()
    _resolved: dict[tuple[str, str], QueueConfig] = PrivateAttr(default_factory=dict)
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    windows: WindowConfig = WindowConfig()
    outbound: OutboundConfig = OutboundConfig()
    staffing: StaffingAlerts = StaffingAlerts()
    connectors: ConnectorsConfig = ConnectorsConfig()

    @model_validator(mode="after")
    def _rules_name_known_things(self) -> "CentreConfig":
        names = [r.name for r in self.alerts.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"alert rule names must be unique: {sorted(n for n in names if names.count(n) > 1)}")
        queues = {q for t in self.tenants.values() for q in t.queues}
        for r in self.alerts.rules:
            for t in r.tenants:
                if t not in self.tenants:
                    raise ValueError(f"rule {r.name!r} names tenant {t!r}, which is not under tenants")
            for q in r.queues:
                if q not in queues:
                    raise ValueError(f"rule {r.name!r} names queue {q!r}, which no tenant lists under queues")
        return self

    def tenant(self, name: str) -> TenantConfig:
        return self.tenants.get(name) or _DEFAULT_TENANT

    def queue(self, tenant: str, queue: str | None) -> QueueConfig:
        """Defaults, then the tenant's queue defaults, then the queue's own settings."""
        # Not self._resolved: pydantic's __getattr__ for private attributes cost 7 % of a
        # worker's time here (called for every event).
        cache = self.__pydantic_private__["_resolved"]  # type: ignore[index]
        key = (tenant, queue or "")
        q = cache.get(key)
        if q is None:
            q = cache[key] = _resolve(self, *key)
        return q

    def known_queues(self) -> list[tuple[str, str]]:
        return [(t, q) for t, tc in self.tenants.items() for q in tc.queues]


_DEFAULT_TENANT = TenantConfig()


def _resolve(cfg: CentreConfig, tenant: str, queue: str) -> QueueConfig:
    t = cfg.tenants.get(tenant)
    if t is None:
        return cfg.defaults
    merged = cfg.defaults.model_dump()
    merged.update(t.queue_defaults.model_dump(exclude_none=True))
    if queue in t.queues:
        merged.update(t.queues[queue].model_dump(exclude_none=True))
    return QueueConfig(**merged)


def load_centre(path: str | Path | None) -> CentreConfig:
    """The centre file, or all defaults when there is none; errors name the key."""
    if not path:
        return CentreConfig()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"centre file {p} not found: fix CCPULSE_CENTRE_CONFIG") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"centre file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"centre file {p} must hold a mapping (defaults, tenants, windows)")
    try:
        return CentreConfig(**data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        key = ".".join(str(x) for x in err["loc"]) or "?"
        raise ConfigError(f"centre file {p}: {key}: {err['msg']}") from None
