"""Inbound event contract: one pydantic model per event type, a discriminated union on ``type``.

Producers in other languages validate against the JSON Schema exported from these
models (``schemas/json/``); the stream validates every message against the same models.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION = 1

Channel = Literal["voice", "chat", "email", "social", "callback"]
CHANNELS: tuple[str, ...] = ("voice", "chat", "email", "social", "callback")

#: Identifiers: printable, no spaces, bounded so a hostile producer cannot blow up keys; no
#: quotes or backslashes (they end SQL and dashboard string literals), and no invisible
#: format characters (bidi overrides, zero-width) that make two ids look alike on a screen.
IDENT_PATTERN = ("^[^\\s\\x00-\\x1f\\x7f'\"`\\\\"
                 "\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+$")
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENT_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class _cached:
    """``functools.cached_property`` without its lock (Python 3.11 takes one on each first
    read): ``ts_ms`` is read first once per event on the worker's hot path."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn, self.name = fn, fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.fn(obj)
        return v


class _Event(BaseModel):
    """Fields every event carries: identity for de-duplication and event time."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              ignored_types=(_cached,))

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Ident = Field(description="Unique per event; redeliveries carry the same id.")
    ts: AwareDatetime = Field(description="Event time with a UTC offset; stored as UTC, ms precision.")
    tenant: Ident = Field(description="The client company the centre works for.")

    @_cached
    def ts_ms(self) -> int:
        """Event time in whole epoch milliseconds (sub-millisecond digits dropped), the
        unit every table and comparison uses: the same event always folds the same way."""
        return (self.ts - _EPOCH) // _MS




class _InteractionEvent(_Event):
    interaction_id: Ident = Field(description="Kafka key of the raw-events topic.")
    channel: Channel


class Offered(_InteractionEvent):
    """The contact entered a queue (again, after a transfer to a queue)."""

    type: Literal["offered"] = "offered"
    queue: Ident
    customer_id: Ident | None = None
    priority: int = Field(0, ge=0, le=100)
    callback: bool | None = Field(None, description="A callback the customer asked for, queued for an agent to "
                                               "call back (direction 'callback'); it counts in the queue's figures.")


# -- IVR / voice bot in front of the queues ----------------------------------------------

IvrResult = Literal["to_queue", "self_served", "hung_up", "transferred_out"]


class IvrEntered(_InteractionEvent):
    """The contact reached the IVR or voice bot."""

    type: Literal["ivr_entered"] = "ivr_entered"
    ivr: Ident | None = Field(None, description="Which IVR flow or bot.")


class IvrStep(_InteractionEvent):
    """A menu choice or a recognised intent inside the IVR; the steps make the contact's path."""

    type: Literal["ivr_step"] = "ivr_step"
    step: Ident = Field(description="Menu node or intent, e.g. 'main>balance' or 'intent:card_lost'.")


class IvrLeft(_InteractionEvent):
    """The contact left the IVR: to a queue (an ``offered`` follows), served by it, hung up in it,
    or sent elsewhere (another number, a partner)."""

    type: Literal["ivr_left"] = "ivr_left"
    result: IvrResult


# -- Outbound: a dialer's or an agent's call out -------------------------------------------

DialResult = Literal["connected", "no_answer", "busy", "answering_machine", "invalid_number", "dialer_abandoned"]


class Dialed(_InteractionEvent):
    """An outbound call attempt began (the contact's direction is then 'outbound')."""

    type: Literal["dialed"] = "dialed"
    campaign: Ident
    list_id: Ident | None = None
    record_id: Ident | None = Field(None, description="The list record (the person) called; attempts per record count on it.")
    number: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^\+?[0-9*#]+$")] | None = Field(
        None, description="The number dialled, digits only; stored as given (redact it upstream if you must).")
    agent_id: Ident | None = Field(None, description="For preview and manual dialling: the agent placing it.")


class DialResulted(_InteractionEvent):
    """How the attempt ended: ``connected`` (a person answered and an agent takes it: ``answered``
    follows), or not connected; ``dialer_abandoned``: a person answered but no agent was free
    (the regulated figure)."""

    type: Literal["dial_result"] = "dial_result"
    result: DialResult


class Answered(_InteractionEvent):
    type: Literal["answered"] = "answered"
    agent_id: Ident
    queue: Ident | None = None


class Abandoned(_InteractionEvent):
    """The customer left the queue before an agent answered."""

    type: Literal["abandoned"] = "abandoned"
    queue: Ident | None = None


class HoldStarted(_InteractionEvent):
    type: Literal["hold_started"] = "hold_started"
    agent_id: Ident | None = None


class HoldEnded(_InteractionEvent):
    type: Literal["hold_ended"] = "hold_ended"
    agent_id: Ident | None = None


class Transferred(_InteractionEvent):
    """To a queue (the contact waits again, an ``offered`` follows) or straight to an agent."""

    type: Literal["transferred"] = "transferred"
    to_queue: Ident | None = None
    to_agent: Ident | None = None
    agent_id: Ident | None = Field(None, description="The agent who transferred.")
    reason: Name | None = Field(None, description="Why, e.g. 'escalation', 'wrong_queue', 'language'.")

    @model_validator(mode="after")
    def _has_target(self) -> "Transferred":
        if (self.to_queue is None) == (self.to_agent is None):
            raise ValueError("transferred needs exactly one of to_queue or to_agent")
        return self


class Ended(_InteractionEvent):
    """The conversation ended (hang-up or chat closed); after-call work starts."""

    type: Literal["ended"] = "ended"
    agent_id: Ident | None = None
    recording: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^[^\s\x00-\x1f\x7f'\"`\\<>]+$")] | None = Field(
        None, description="The recording's id or URL (https), shown as a link on the contact.")


class WrapupEnded(_InteractionEvent):
    type: Literal["wrapup_ended"] = "wrapup_ended"
    agent_id: Ident | None = None
    disposition: Name | None = None
    resolved: bool | None = None
    right_party: bool | None = Field(None, description="Outbound: the person the campaign wanted was reached.")
    converted: bool | None = Field(None, description="Outbound: the campaign's goal was met (a sale, a promise to pay...).")


class FirstResponse(_InteractionEvent):
    """First agent message of a chat-like contact."""

    type: Literal["first_response"] = "first_response"
    agent_id: Ident | None = None


class Csat(_InteractionEvent):
    """A satisfaction rating; may arrive minutes or days after the contact."""

    type: Literal["csat"] = "csat"
    score: int = Field(ge=1, le=5)


class QaEvaluated(_InteractionEvent):
    """A supervisor scored the recorded conversation against a form; may come days later.
    A second evaluation of the same contact by the same form replaces the first (latest wins)."""

    type: Literal["qa_evaluated"] = "qa_evaluated"
    agent_id: Ident = Field(description="The agent evaluated.")
    evaluator: Ident
    form: Ident
    score: float = Field(ge=0, le=100, description="Percent.")
    sections: dict[Ident, Annotated[float, Field(ge=0, le=100)]] = Field(default_factory=dict, max_length=64)
    critical_failure: bool | None = Field(None, description="A failure on a critical item (compliance, "
                                                         "security): counted whatever the score.")


class _AgentEvent(_Event):
    agent_id: Ident = Field(description="Kafka key of the agent-events topic.")


class AgentLogin(_AgentEvent):
    type: Literal["agent_login"] = "agent_login"
    queues: list[Ident] = Field(default_factory=list, max_length=256)
    team: Ident | None = Field(None, description="The agent's team from this login on (history is kept: "
                                                   "figures before it stay with the earlier team).")
    department: Ident | None = None
    site: Ident | None = None


class AgentLogout(_AgentEvent):
    type: Literal["agent_logout"] = "agent_logout"


class AgentReady(_AgentEvent):
    type: Literal["agent_ready"] = "agent_ready"


class AgentNotReady(_AgentEvent):
    type: Literal["agent_not_ready"] = "agent_not_ready"
    reason: Name = Field(description="break, lunch, training, meeting, ...")


InteractionEvent = Annotated[
    Union[
        Offered, Answered, Abandoned, HoldStarted, HoldEnded, Transferred,
        Ended, WrapupEnded, FirstResponse, Csat, IvrEntered, IvrStep, IvrLeft, Dialed, DialResulted,
        QaEvaluated,
    ],
    Field(discriminator="type"),
]
AgentEvent = Annotated[
    Union[AgentLogin, AgentLogout, AgentReady, AgentNotReady],
    Field(discriminator="type"),
]
Event = Annotated[
    Union[
        Offered, Answered, Abandoned, HoldStarted, HoldEnded, Transferred,
        Ended, WrapupEnded, FirstResponse, Csat, IvrEntered, IvrStep, IvrLeft, Dialed, DialResulted,
        QaEvaluated,
        AgentLogin, AgentLogout, AgentReady, AgentNotReady,
    ],
    Field(discriminator="type"),
]

INTERACTION_EVENT_TYPES: tuple[str, ...] = (
    "offered", "answered", "abandoned", "hold_started", "hold_ended", "transferred",
    "ended", "wrapup_ended", "first_response", "csat", "ivr_entered", "ivr_step", "ivr_left",
    "dialed", "dial_result", "qa_evaluated",
)
AGENT_EVENT_TYPES: tuple[str, ...] = ("agent_login", "agent_logout", "agent_ready", "agent_not_ready")

interaction_event_adapter: TypeAdapter[InteractionEvent] = TypeAdapter(InteractionEvent)
agent_event_adapter: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Parse one JSON message; raises ``pydantic.ValidationError`` with the reason."""
    return event_adapter.validate_json(raw)
