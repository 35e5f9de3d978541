"""The alert lifecycle: exact transitions for breaches, flapping, small samples, restarts."""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.domain import kpi
from streams.domain.alerts import AlertRule, Figures, alert_id, new_alert_state, step
from streams.config.centre import QueueConfig, load_centre
from streams.config.settings import ConfigError

Q = QueueConfig(sl_goal=0.8, sl_threshold_s=20, short_abandon_s=5)
G = ("acme", "sales", "voice")
SL = AlertRule(name="sl", metric="service_level", threshold="goal", for_s=60, hysteresis=0.05,
               recover_for_s=30, renotify_s=300, min_sample=10, severity="critical")
T0 = 1_767_258_000_000


def sl(answered_in_sl: int, answered: int, abandoned: int = 0) -> Figures:
    v = kpi.zero()
    v[kpi.IDX["answered"]], v[kpi.IDX["answered_in_sl"]], v[kpi.IDX["abandoned"]] = answered, answered_in_sl, abandoned
    return Figures.of(v, waiting=0, oldest_wait_s=0)


def run(rule: AlertRule, series: list[tuple[int, Figures]], st: dict | None = None) -> list[tuple]:
    st = st if st is not None else new_alert_state()
    out = []
    for t, f in series:
        tr = step(rule, st, G, f, Q, T0 + t * 1000)
        if tr:
            out.append((t, tr.status, tr.renotify, round(tr.value, 3) if tr.value is not None else None,
                        tr.alert_id))
    return out


def test_breach_fires_after_for_renotifies_and_resolves_with_hysteresis() -> None:
    series = [(0, sl(9, 10)), (10, sl(6, 10)), (40, sl(6, 10)), (70, sl(6, 10)),  # pending from 10, fires at 70
              (200, sl(7, 10)), (380, sl(7, 10)),                                  # re-notify 300 s after 70
              (400, sl(82, 100)),   # 0.82 is past the goal but inside the 0.05 band: still firing
              (410, sl(9, 10)),     # 0.9: recovering...
              (430, sl(9, 10)),     # ...not yet 30 s
              (440, sl(9, 10))]     # resolved
    aid = alert_id("sl", *G, T0 + 10_000)
    assert run(SL, series) == [(70, "firing", False, 0.6, aid), (380, "firing", True, 0.7, aid),
                               (440, "resolved", False, 0.9, aid)]
    assert aid == "sl/acme/sales/voice/20260101T090010Z"


def test_a_short_dip_or_a_small_sample_never_fires() -> None:
    assert run(SL, [(0, sl(5, 10)), (30, sl(9, 10)), (100, sl(9, 10))]) == []   # back before for_s
    assert run(SL, [(0, sl(0, 2, 2)), (100, sl(0, 3, 3)), (200, sl(0, 4, 4))]) == []  # under min_sample


def test_flapping_during_recovery_stays_one_episode() -> None:
    out = run(SL, [(0, sl(5, 10)), (60, sl(5, 10)), (70, sl(9, 10)), (80, sl(5, 10)), (90, sl(9, 10)),
                   (130, sl(9, 10))])
    assert [(t, s) for t, s, *_ in out] == [(60, "firing"), (130, "resolved")]
    assert out[0][-1] == out[1][-1]


def test_state_round_trips_through_json_and_a_recomputed_episode_has_the_same_id() -> None:
    import json

    st = new_alert_state()
    first = run(SL, [(0, sl(5, 10)), (60, sl(5, 10))], st)
    st = json.loads(json.dumps(st))  # what the changelog keeps
    assert run(SL, [(100, sl(5, 10)), (120, sl(9, 10)), (150, sl(9, 10))], st)[-1][1:] == \
        ("resolved", False, 0.9, first[0][-1])
    # A worker that lost its state and recomputes from the same figures finds the same id.
    again = run(SL, [(0, sl(5, 10)), (60, sl(5, 10))])
    assert again == first


def test_oldest_wait_and_waiting_rules() -> None:
    rule = AlertRule(name="old", metric="oldest_wait_s", threshold=120, for_s=0, renotify_s=600)
    st = new_alert_state()
    z = kpi.zero()
    assert step(rule, st, G, Figures.of(z, 3, 100), Q, T0) is None
    tr = step(rule, st, G, Figures.of(z, 3, 121), Q, T0 + 1000)
    assert tr is not None and tr.status == "firing" and tr.value == 121 and tr.threshold == 120
    tr = step(rule, st, G, Figures.of(z, 0, 0), Q, T0 + 2000)
    assert tr is not None and tr.status == "resolved"


def test_business_hours_mute_new_alerts_only() -> None:
    rule = AlertRule(name="w", metric="waiting", threshold=5, for_s=0, business_hours_only=True)
    z = kpi.zero()
    st = new_alert_state()
    assert step(rule, st, G, Figures.of(z, 9, 0), Q, T0, open_now=False) is None
    assert step(rule, st, G, Figures.of(z, 9, 0), Q, T0 + 1, open_now=True).status == "firing"
    assert step(rule, st, G, Figures.of(z, 0, 0), Q, T0 + 2, open_now=False).status == "resolved"


def test_rules_in_the_centre_file_are_checked(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("tenants: {acme: {queues: {sales: {}}}}\n"
                 "alerts: {rules: [{name: sl, metric: service_level, threshold: goal, queues: [sales]}]}\n")
    assert load_centre(f).alerts.rules[0].matches("acme", "sales", "voice")
    for text, want in [
        ("alerts: {rules: [{name: x, metric: waiting, threshold: 3, queues: [nope]}]}", "queue 'nope'"),
        ("alerts: {rules: [{name: x, metric: waiting, threshold: goal}]}", "service_level rules only"),
        ("alerts: {rules: [{name: x, metric: sl, threshold: 1}]}", "alerts.rules.0.metric"),
    ]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=want):
            load_centre(f)


def test_ready_agents_while_contacts_wait() -> None:
    rule = AlertRule(name="staff", metric="ready_agents_while_waiting", threshold=2, for_s=0)
    assert rule.matches("acme", "sales", "*") and not rule.matches("acme", "sales", "voice")
    assert not SL.matches("acme", "sales", "*")
    z = kpi.zero()
    st = new_alert_state()
    g = ("acme", "sales", "*")
    assert step(rule, st, g, Figures.of(z, 0, 0, ready_agents=0), Q, T0) is None        # nobody waits
    assert step(rule, st, g, Figures.of(z, 3, 10, ready_agents=None), Q, T0 + 1) is None  # no agent data
    tr = step(rule, st, g, Figures.of(z, 3, 10, ready_agents=1), Q, T0 + 2)
    assert tr is not None and (tr.status, tr.value, tr.threshold) == ("firing", 1.0, 2.0)
    tr = step(rule, st, g, Figures.of(z, 0, 0, ready_agents=1), Q, T0 + 3)               # queue emptied
    assert tr is not None and tr.status == "resolved"


def test_the_alerting_flow_sums_every_partitions_part_and_ignores_a_replayed_older_one(tmp_path: Path) -> None:
    """What the alerts agent does with the live-parts topic (streams/domain/alerts.py, pure): two
    partitions' 15-minute parts are summed before the rule sees them, a replayed older part
    does not replace a newer one, and the firing transition becomes one notification."""
    from streams.domain.alerts import evaluate_group, new_group_state, take_live_part

    f = tmp_path / "c.yaml"
    f.write_text("tenants: {acme: {timezone: UTC, queues: {sales: {}}}}\n"
                 "alerts: {rules: [{name: sl, metric: service_level, threshold: 0.8, window_minutes: 15, "
                 "min_sample: 10, for_s: 0, queues: [sales]}]}\n")
    centre = load_centre(f)
    t = 1_767_258_000_000

    def part(p: int, answered: int, in_sl: int, at: int) -> dict:
        v = kpi.zero()
        v[kpi.IDX["answered"]], v[kpi.IDX["answered_in_sl"]] = answered, in_sl
        return {"p": p, "w": 15, "v": v, "n": 0, "o": None, "t": at}

    st = new_group_state()
    take_live_part(st, part(0, 6, 6, t))          # partition 0 alone: 6 of 6, under the sample
    assert evaluate_group(centre, ("acme", "sales", "voice"), st) == []
    take_live_part(st, part(1, 6, 2, t + 1000))   # with partition 1: 8 of 12 = 0.67 < 0.8
    take_live_part(st, part(1, 1, 1, t - 5000))   # a replayed older part of partition 1: ignored
    (note,) = evaluate_group(centre, ("acme", "sales", "voice"), st)
    assert (note["status"], note["rule"], round(note["value"], 4), note["at_ms"]) == ("firing", "sl", 0.6667, t + 1000)
    assert note["summary"] == "service_level 0.667 vs 0.8 on acme/sales/voice (firing)"
    take_live_part(st, {"ap": 3, "r": 2, "t": t})  # ready agents of an agents partition
    assert st["agents"] == {"3": [2, t]}
    assert evaluate_group(centre, ("acme", "sales", "voice"), st) == []  # still firing: nothing new


def test_live_parts_carry_the_rule_windows_and_the_whole_queue_waiting() -> None:
    from streams.domain.alerts import live_parts

    v = kpi.zero()
    live = [(0, ("acme", "sales", "voice"), w, v, 2, 100, 5000) for w in (5, 15, 60)] + \
           [(0, ("acme", "sales", "chat"), w, v, 1, 50, 5000) for w in (5, 15, 60)] + \
           [(1, ("acme", "sales", "voice"), w, v, 4, 70, 6000) for w in (5, 15, 60)]
    out = live_parts(live, {15}, True, 5)
    per_group = sorted((g, m["p"], m["w"]) for g, m in out if g[2] != "*")
    assert per_group == [(["acme", "sales", "chat"], 0, 15), (["acme", "sales", "voice"], 0, 15),
                         (["acme", "sales", "voice"], 1, 15)]
    queue = {m["p"]: (m["n"], m["o"], m["w"]) for g, m in out if g == ["acme", "sales", "*"]}
    assert queue == {0: (3, 50, 0), 1: (4, 70, 0)}  # every channel of the queue, counted once per window set
    assert [g for g, _ in live_parts(live, {15}, False, 5) if g[2] == "*"] == []
