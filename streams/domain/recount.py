"""The stream's interval figures recounted from the interaction records, and what differs.

ccpulse promises that every stored figure equals the recount from the records. The
recount here uses the very rules the stream uses (``kpi.contribution`` of each record), split
by the events partition that folded the contact, the way the stream writes its partial rows
(``kpi_interval_parts.source_partition``). So a difference names the exact row to rewrite,
and a repaired row is the row the stream itself would write: a later write of the stream
replaces it instead of adding to it.

Pure: the SQL to read both sides is built here, but run by the caller (the worker's timer,
``ccpulse verify``, ``ccpulse recompute``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from schemas.events import IDENT_PATTERN
from streams.domain import kpi
from streams.domain.windows import INTERVAL_MS

#: (source partition, tenant, queue, channel, interval start ms): one stored row.
RowKey = tuple[int, str, str, str, int]
#: A record stored before records named their partition (migration 011) reads this.
UNKNOWN_PARTITION = 65535


@dataclass(frozen=True)
class Thresholds:
    """What the exit part of a contact was judged by: the stored row's own settings."""

    sl_threshold_s: int
    short_abandon_s: int


@dataclass(frozen=True)
class Difference:
    key: RowKey
    fields: tuple[str, ...]
    stored_values: tuple[int, ...]
    recounted_values: tuple[int, ...]

    def describe(self) -> str:
        p, t, q, c, start = self.key
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(start / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        what = ", ".join(f"{f} {a} -> {b}" for f, a, b in zip(self.fields, self.stored_values, self.recounted_values))
        where = f"{t}/{q}/{c} {when} UTC" + (f" partition {p}" if p >= 0 else "")
        return f"{where}: {what}"


# --- the recount ---------------------------------------------------------------------

def record_of(row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``records_sql`` as the record dict ``kpi.contribution`` reads."""
    (partition, tenant, queue, channel, offered, answered, abandoned, ended, wrapup, first_response,
     wait, talk, hold, acw, transfers, csat) = row
    return {"source_partition": int(partition), "tenant": tenant, "queue": queue, "channel": channel,
            "offered_at_ms": offered, "answered_at_ms": answered, "abandoned_at_ms": abandoned,
            "ended_at_ms": ended, "wrapup_ended_at_ms": wrapup, "first_response_at_ms": first_response,
            "wait_ms": int(wait), "talk_ms": int(talk), "hold_ms": int(hold), "acw_ms": int(acw),
            "transfers": int(transfers), "csat": csat}


def recount(records: Iterable[Mapping[str, Any]], thresholds: Callable[[str, str, str, int], Thresholds],
            lo_ms: int, hi_ms: int) -> dict[RowKey, kpi.Vector]:
    """Per row key in [lo_ms, hi_ms): the sum of what each record adds there.

    ``thresholds(tenant, queue, channel, interval_start)`` gives the settings an exit part
    is judged by (the stored row's, so a changed goal does not rewrite history)."""
    out: dict[RowKey, kpi.Vector] = {}
    for rec in records:
        t, q, c = rec["tenant"], rec["queue"] or "", rec["channel"]
        exit_at, _ = kpi.exit_time(rec)
        at = exit_at if exit_at is not None else rec.get("offered_at_ms") or lo_ms
        th = thresholds(t, q, c, at - at % INTERVAL_MS)
        for ts, vec in kpi.contribution(rec, th):  # type: ignore[arg-type]  # duck-typed QueueConfig
            start = ts - ts % INTERVAL_MS
            if lo_ms <= start < hi_ms:
                key = (rec["source_partition"], t, q, c, start)
                cur = out.get(key)
                if cur is None:
                    cur = out[key] = kpi.zero()
                kpi.add(cur, vec)
    return out


def totals(rows: Mapping[RowKey, kpi.Vector]) -> dict[RowKey, kpi.Vector]:
    """The same figures summed over partitions (partition -1): what the views show."""
    out: dict[RowKey, kpi.Vector] = {}
    for (_p, t, q, c, start), vec in rows.items():
        key = (-1, t, q, c, start)
        cur = out.get(key)
        if cur is None:
            cur = out[key] = kpi.zero()
        kpi.add(cur, vec)
    return out


def compare(stored: Mapping[RowKey, Sequence[int]], recounted: Mapping[RowKey, Sequence[int]],
            skip: Iterable[str] = ()) -> list[Difference]:
    """Every row whose stored figures are not the recount's; a missing row counts as zeros."""
    zero = kpi.zero()
    idx = [i for i, f in enumerate(kpi.FIELDS) if f not in set(skip)]
    out = []
    for key in sorted(set(stored) | set(recounted)):
        a, b = stored.get(key, zero), recounted.get(key, zero)
        bad = [i for i in idx if a[i] != b[i]]
        if bad:
            out.append(Difference(key, tuple(kpi.FIELDS[i] for i in bad), tuple(int(a[i]) for i in bad),
                                  tuple(int(b[i]) for i in bad)))
    return out


def repairs(stored: Mapping[RowKey, Sequence[int]], recounted: Mapping[RowKey, kpi.Vector],
            diffs: Iterable[Difference], keep: Iterable[str] = ()) -> list[tuple[RowKey, kpi.Vector]]:
    """The rows to write for these differences: the recount, or zeros where it has none;
    ``keep``: fields that stay as stored (what a legacy server cannot recount exactly)."""
    out = []
    for d in diffs:
        vec = list(recounted.get(d.key) or kpi.zero())
        for f in keep:
            vec[kpi.IDX[f]] = int((stored.get(d.key) or kpi.zero())[kpi.IDX[f]])
        out.append((d.key, vec))
    return out


# --- SQL for both sides ----------------------------------------------------------------

_IDENT = re.compile(IDENT_PATTERN)


def quote(value: str) -> str:
    """A string literal for ClickHouse; names come from the event contract's ``Ident``."""
    if not 1 <= len(value) <= 128 or not _IDENT.match(value):
        raise ValueError(f"{value!r} is not a tenant name (1-128 characters; no spaces, quotes, backslashes or control characters)")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ms(col: str, dialect: str) -> str:
    if dialect == "legacy":
        return f"if(isNull({col}), NULL, toUInt64(toUnixTimestamp(assumeNotNull({col}))) * 1000)"
    return f"toUnixTimestamp64Milli({col})"


def _filters(tenant: str | None, partitions: Iterable[int] | None) -> str:
    out = ""
    if tenant is not None:
        out += f" AND tenant = {quote(tenant)}"
    if partitions is not None:
        out += f" AND source_partition IN ({', '.join(str(int(p)) for p in sorted(set(partitions))) or '-1'})"
    return out


def records_sql(db: str, dialect: str, lo_ms: int, hi_ms: int, tenant: str | None = None,
                partitions: Iterable[int] | None = None) -> str:
    """The current version of every record with any part (offer, queue exit, handling) in
    [lo_ms, hi_ms).

    Not ``FINAL`` over the whole table (the worker runs this every minute, and the merge
    reads every row's key): the contacts with a version in range are found by a scan of
    their timestamps, then their newest versions by the primary key. A contact whose
    newest version left the range reads through, and its parts fall outside it."""
    lo, hi = f"toDateTime({lo_ms // 1000}, 'UTC')", f"toDateTime({hi_ms // 1000}, 'UTC')"

    def within(col: str) -> str:
        return f"({col} >= {lo} AND {col} < {hi})"

    cols = ", ".join(["source_partition", "tenant", "ifNull(queue, '')", "channel"]
                     + [_ms(c, dialect) for c in ("offered_at", "answered_at", "abandoned_at", "ended_at",
                                                  "wrapup_ended_at", "first_response_at")]
                     + ["wait_ms", "talk_ms", "hold_ms", "acw_ms", "transfers", "csat"])
    touched = (f"SELECT tenant, interaction_id FROM {db}.interactions WHERE ({within('offered_at')} "
               f"OR {within('ifNull(answered_at, abandoned_at)')} "
               f"OR (answered_at IS NOT NULL AND {within('ifNull(wrapup_ended_at, ended_at)')})){_filters(tenant, None)}")
    newest = (f"SELECT * FROM {db}.interactions WHERE (tenant, interaction_id) IN ({touched}) "
              "ORDER BY version DESC LIMIT 1 BY tenant, interaction_id")
    # Outbound attempts are not queue contacts (kpi.contribution gives them no part).
    return f"SELECT {cols} FROM ({newest}) WHERE direction != 'outbound'{_filters(None, partitions)}"


def stored_sql(db: str, lo_ms: int, hi_ms: int, tenant: str | None = None,
               partitions: Iterable[int] | None = None) -> str:
    """The stream's rows in [lo_ms, hi_ms): key, counts in ``kpi.FIELDS`` order, thresholds."""
    return (f"SELECT source_partition, tenant, queue, channel, toUInt64(toUnixTimestamp(interval_start)) * 1000, "
            f"{', '.join(kpi.FIELDS)}, sl_threshold_s, short_abandon_s FROM {db}.kpi_interval_parts FINAL "
            f"WHERE interval_start >= toDateTime({lo_ms // 1000}, 'UTC') "
            f"AND interval_start < toDateTime({hi_ms // 1000}, 'UTC'){_filters(tenant, partitions)}")


def parse_stored(rows: Iterable[Sequence[Any]]) -> tuple[dict[RowKey, kpi.Vector], dict[tuple[str, str, str, int], Thresholds]]:
    """Rows of ``stored_sql`` → (vectors by row key, thresholds by group and interval)."""
    vectors: dict[RowKey, kpi.Vector] = {}
    settings: dict[tuple[str, str, str, int], Thresholds] = {}
    for r in rows:
        p, t, q, c, start = int(r[0]), r[1], r[2], r[3], int(r[4])
        vectors[(p, t, q, c, start)] = [int(v) for v in r[5:5 + kpi.N]]
        settings[(t, q, c, start)] = Thresholds(int(r[5 + kpi.N]), int(r[6 + kpi.N]))
    return vectors, settings


def legacy_skip(dialect: str) -> tuple[str, ...]:
    """Fields a server without millisecond timestamps cannot recount exactly (first response
    is the difference of two timestamps; the record keeps whole seconds there)."""
    return ("first_response_ms",) if dialect == "legacy" else ()
