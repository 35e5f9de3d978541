"""Output contract: the interaction record and the dead letter, as they travel on topics.

Times are integers in epoch milliseconds and durations integers in milliseconds, so a
record is exact (no float rounding) and identical whichever order its events came in.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["answered", "abandoned", "unanswered", "ivr", "not_connected"]
Direction = Literal["inbound", "outbound", "callback"]


class InteractionRecord(BaseModel):
    """One contact, assembled from its events; re-emitted with a higher ``version`` when a
    late event (a CSAT days later, an event delivered out of order) changes it."""

    model_config = ConfigDict(extra="forbid")

    interaction_id: str
    tenant: str
    channel: str
    queue: str | None = Field(description="Queue the contact left last (after transfers).")
    first_queue: str | None
    queues: list[str] = Field(description="Every queue visited, in order.")
    customer_id: str | None
    priority: int
    agent_id: str | None = Field(description="Agent who handled it last.")
    first_agent_id: str | None
    offered_at_ms: int | None
    answered_at_ms: int | None
    abandoned_at_ms: int | None
    ended_at_ms: int | None
    wrapup_ended_at_ms: int | None
    first_response_at_ms: int | None
    last_event_at_ms: int
    wait_ms: int = Field(description="Time queued, summed over every queue stint.")
    talk_ms: int = Field(description="Time connected to an agent, less hold.")
    hold_ms: int
    acw_ms: int = Field(description="After-call work: ended -> wrap-up ended.")
    holds: int
    transfers: int
    outcome: Outcome
    disposition: str | None
    resolved: bool | None
    csat: int | None
    csat_at_ms: int | None
    closed_by_timeout: bool = Field(description="Closed because its final event never came.")
    anomalies: list[str] = Field(description="Impossible sequences seen, e.g. answered_without_offer.")
    n_events: int
    version: int = Field(description="Grows with every change; the table keeps the highest.")
    direction: Direction = Field(description="outbound when dialled out (``dialed``), callback when queued as a "
                                             "callback, else inbound. Queue figures count inbound and callback.")
    campaign: str | None
    list_id: str | None
    record_id: str | None
    dialed_at_ms: int | None
    dial_result: str | None = Field(description="connected, no_answer, busy, answering_machine, invalid_number, "
                                                "dialer_abandoned.")
    right_party: bool | None
    converted: bool | None
    ivr: str | None
    ivr_entered_at_ms: int | None
    ivr_ms: int = Field(description="Time in the IVR: entered to left (or to the queue), never negative.")
    ivr_result: str | None = Field(description="to_queue, self_served, hung_up, transferred_out.")
    ivr_path: list[str] = Field(description="The IVR steps (menu nodes, intents) in order.")
    transfer_reasons: list[str]
    recording: str | None
    qa_evaluations: int = Field(description="Forms this contact was scored on (the latest score per form).")
    qa_score: float | None = Field(description="Mean of the latest score per form, percent.")
    qa_critical: bool | None = Field(description="Any form's latest evaluation had a critical failure.")


class DeadLetter(BaseModel):
    """A message the pipeline could not use, kept with everything needed to replay it."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    received_at_ms: int
    key: str | None = Field(description="Original key, UTF-8 with replacement characters.")
    payload_b64: str = Field(description="The original bytes, base64.")
