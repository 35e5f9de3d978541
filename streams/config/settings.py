"""One frozen settings model for every command: environment variables (``CCPULSE_*``)
over an optional YAML file (``CCPULSE_CONFIG`` or ``--config``) over defaults."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "CCPULSE_"


class ConfigError(Exception):
    """A configuration problem, reported as one line with what to do next."""


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every setting of ccpulse; the README lists them with these descriptions."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    # --- Kafka -------------------------------------------------------------------------
    broker: str = Field("kafka://127.0.0.1:19092", description="Kafka bootstrap URL(s), `kafka://host:port[;host:port]`.")
    broker_flavour: Literal["auto", "kafka", "tansu"] = Field(
        "auto", description="`auto` asks the broker its cluster id and switches on the work-around for the local dev "
                            "broker's (Tansu's) end-offset bug when it is that broker; `kafka`/`tansu` force it off/on.")
    app_id: str = Field("ccpulse", description="Faust app id: consumer group and changelog topic prefix.")
    topic_events: str = Field("ccpulse.events", description="Raw interaction events, keyed by interaction_id.")
    topic_agent_events: str = Field("ccpulse.agent-events", description="Raw agent events, keyed by agent_id.")
    topic_interactions: str = Field("ccpulse.interactions", description="Interaction records, keyed by interaction_id.")
    topic_dead_letters: str = Field("ccpulse.dead-letters", description="Rejected messages with the reason.")
    topic_agent_activity: str = Field(
        "ccpulse.agent-activity", description="Internal: the contacts each agent handles, keyed by agent_id.")
    topic_live_parts: str = Field(
        "ccpulse.live-parts", description="Internal: each partition's live figures, keyed by tenant|queue|channel.")
    topic_alerts: str = Field("ccpulse.alerts", description="Alert notifications (firing, resolved), keyed by alert id.")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every ccpulse topic (set once, at `ccpulse setup`).")
    replication_factor: int = Field(1, ge=1, description="Replication factor of ccpulse topics.")
    session_timeout_s: float = Field(10.0, gt=0, description="Consumer session timeout; lower = faster fail-over and start.")
    commit_interval_s: float = Field(1.0, gt=0, description="How often processed offsets are committed.")
    fetch_max_wait_s: float = Field(
        0.1, gt=0, le=10, description="Longest a fetch waits at the broker for data (faust fixes 1.5 s; lower = fresher live figures).")
    # --- State machine -----------------------------------------------------------------
    interaction_timeout_s: float = Field(
        4 * 3600, gt=0, description="Close an interaction this long (event time) after its last event if its final event never came.")
    state_retention_s: float = Field(
        8 * 86400, gt=0, description="Keep a closed interaction's state this long for late events (CSAT, stragglers).")
    max_events_per_interaction: int = Field(
        500, ge=10, le=100_000, description="Events one contact may have; more go to the dead letters "
                                            "(`too_many_events`) and its record is closed and flagged.")
    max_open_contacts: int = Field(
        1_000_000, ge=1, description="Open contacts one worker keeps; new contacts beyond go to the dead letters "
                                     "(`too_many_open_contacts`, replayable). /health warns from 80 %.")
    max_future_s: float = Field(
        300.0, ge=0, le=86400, description="Events dated further ahead of the worker's clock go to the dead letters "
                                           "(`timestamp_in_future`); nearer ones are kept, but never move the event clock past the wall clock.")
    verify_interval_s: float = Field(
        60.0, gt=0, description="How often the worker checks its recently settled intervals against the recount from "
                                "the records and repairs what differs (late data past the lateness horizon: every 5 s).")
    verify_lookback_s: float = Field(
        7200.0, gt=0, description="How far back from the newest settled interval each check reaches.")
    store: str = Field("memory://", description="Faust table store: `memory://` (rebuilt from the changelog) or `rocksdb://`.")
    centre_config: Path | None = Field(
        None, description="YAML file of tenants, queues (SL goals, variants), teams, billing, KPI windows and alert "
                          "rules; unset: the state folder's centre.yaml if there is one (`ccpulse demo` puts a copy "
                          "of centre.example.yaml there), else all defaults.")
    forecast_interval_s: float = Field(
        3600.0, ge=0, description="How often the worker recomputes every queue's forecast and the agents it needs "
                                  "(the `forecasts` table; 0: never). The worker that owns events partition 0 does it.")
    forecast_days: int = Field(7, ge=1, le=62, description="Days after today each forecast covers.")
    forecast_history_days: int = Field(56, ge=14, le=1100, description="Days of history each forecast learns from.")
    alert_webhook_url: str | None = Field(None, description="POST every alert here as signed JSON (streams/worker/notify.py).")
    alert_webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the webhook's X-Ccpulse-Signature.")
    alert_slack_url: str | None = Field(None, description="Slack incoming-webhook URL for alerts.")
    alert_allow_http: bool = Field(
        False, description="Allow plain-http webhook and Slack URLs to hosts other than this machine (https otherwise).")
    # --- ClickHouse --------------------------------------------------------------------
    clickhouse_url: str = Field(
        "chdb://.ccpulse/chdb", description="`chdb://relative/path`, `chdb:///absolute/path` (embedded) or `clickhouse://user:pass@host:9000/db` (server).")
    clickhouse_database: str = Field("ccpulse", description="Database for chdb (a clickhouse:// URL names its own).")
    clickhouse_query_url: str | None = Field(
        None, description="On a server: `clickhouse://user:pass@host:9000/db` of a read-only user (`ccpulse db access` "
                          "makes `grafana`) that the worker's /sql lane logs in as, so the server's grants bound what "
                          "a typed query reaches. Unset: the lane logs in as the writer, with readonly=1.")
    engine_process: bool = Field(
        True, description="The worker runs an embedded (chdb://) engine in a child process: ~300 MB less in the worker, "
                          "and an engine crash is an outage it retries, not a worker crash.")
    sink_batch_size: int = Field(10000, ge=1, description="Messages an agent takes per batch at most (so rows per ClickHouse insert, about).")
    sink_batch_seconds: float = Field(0.2, gt=0, description="Longest a row waits before its batch is written.")
    stall_timeout_s: float = Field(30.0, gt=0, description="Seconds without a message while the broker holds more "
                                   "for this worker before it exits (code 75) for its supervisor to restart it.")
    # --- Worker web endpoint -----------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Bind address of the worker's read-only HTTP endpoint.")
    web_debug: bool = Field(False, description="Serve /debug/tasks (every asyncio task's stack; needs the worker token).")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's HTTP endpoint (`ccpulse sql` uses it).")
    # --- Local development -------------------------------------------------------------
    state_dir: Path = Field(Path(".ccpulse"), description="Project-local folder for the dev broker's pid/logs and faust data.")
    dev_broker_port: int = Field(19092, ge=1, le=65535, description="Port of the local broker `ccpulse dev up` starts.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Worker log level.")

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        if not v.startswith("kafka://") or not v[len("kafka://"):]:
            raise ValueError("broker must look like kafka://host:port")
        return v

    @model_validator(mode="after")
    def _centre_of_the_state_folder(self) -> "Settings":
        """Every command run against one state folder (demo, worker, verify, report) measures by
        the same centre file: the one configured, else the folder's own."""
        if self.centre_config is None and (own := self.state_dir / "centre.yaml").is_file():
            object.__setattr__(self, "centre_config", own)  # (frozen: set once, while validating)
        return self

    @model_validator(mode="after")
    def _https_alerts(self) -> "Settings":
        """Alerts leave the machine signed but readable: https, unless to loopback or allowed."""
        for name in ("alert_webhook_url", "alert_slack_url"):
            url = getattr(self, name)
            if not url:
                continue
            u = urlparse(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"{name} must be an http(s) URL with a host")
            if u.scheme == "http" and not self.alert_allow_http and not _loopback(u.hostname):
                raise ValueError(f"{name} must use https (plain http only to this machine, or set "
                                 "CCPULSE_ALERT_ALLOW_HTTP=true)")
        return self

    @field_validator("clickhouse_url")
    @classmethod
    def _ch_url(cls, v: str) -> str:
        scheme = urlparse(v).scheme
        if scheme not in ("chdb", "clickhouse"):
            raise ValueError("clickhouse_url must start with chdb:/// or clickhouse://")
        return v

    @property
    def bootstrap_servers(self) -> list[str]:
        return [h for h in self.broker[len("kafka://"):].split(";") if h]

    def dump(self) -> dict[str, Any]:
        """Settings as shown to a person: credentials in URLs, query strings and Slack paths
        masked (streams/redact.py), secrets as ``**********``."""
        from streams.redact import redact

        out = self.model_dump(mode="json")
        return {k: redact(v) if isinstance(v, str) else v for k, v in out.items()}

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML file named by CCPULSE_CONFIG, if any (keys as the field names)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(ENV_PREFIX + "CONFIG")
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found: fix CCPULSE_CONFIG or --config") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of setting: value")
        return data


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and YAML; a problem becomes one ConfigError naming the key."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        if not key:  # a rule across settings: its message names them
            raise ConfigError(f"settings: {str(err['msg']).removeprefix('Value error, ')}") from None
        raise ConfigError(
            f"setting {key!r}: {err['msg']} (env {ENV_PREFIX}{key.upper()} or key {key!r} in the YAML file)"
        ) from None
