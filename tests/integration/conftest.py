"""A real pipeline run over a simulated day, shared by the tests that only read its results
(the SQL guide's examples, the views for the data team)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from streams.traffic.producer import from_event
from streams.traffic.simulate import SimConfig, Simulation, event_time_order, simulate
from tests.conftest import make_env
from tests.integration.pipeline_helpers import send
from tests.services import Broker, Worker, run_cli, wait_for

#: A centre with each tenant's time zone and queues of different SL variants and goals.
CENTRE = """
tenants:
  acme:
    timezone: Europe/London
    queues:
      acme-sales: {sl_threshold_s: 30, sl_goal: 0.9, sl_variant: ignore_abandons}
      acme-support: {sl_threshold_s: 20, sl_goal: 0.8}
      acme-chat: {sl_threshold_s: 60, short_abandon_s: 10}
    billing: {unit: talk_minute, rounding: started_minute, rate: 0.5, currency: GBP, sl_goal: 0.85}
  globex: {timezone: America/New_York}
  initech: {timezone: Asia/Jerusalem}
windows: {refresh_s: 0.5}
"""


@dataclass
class SimulatedRun:
    sim: Simulation
    worker: Worker
    env: dict[str, str]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.worker.query(sql)


@pytest.fixture(scope="session")
def simulated_run(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedRun]:
    """One simulated day through broker → worker → chdb, read-only afterwards."""
    tmp = tmp_path_factory.mktemp("simulated-run")
    env = make_env(tmp, broker)
    (tmp / "centre.yaml").write_text(CENTRE)
    env["CCPULSE_CENTRE_CONFIG"] = str(tmp / "centre.yaml")
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    sim = simulate(SimConfig.product(seed=7, interactions=2_500))  # the demo's traffic: IVR, outbound, QA too
    send(env, [from_event(e) for e in event_time_order(sim)])
    worker = Worker(env, tmp / "worker.log").start()
    try:
        n = len(sim.truth)
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == n, 180,
                 f"all {n} interaction records stored", interval=0.5)
        queued = sum(r["offered_at_ms"] is not None for r in sim.truth.values())
        wait_for(lambda: worker.query("SELECT sum(offered) FROM ccpulse.kpi_intervals_15m")[0][0] == queued, 120,
                 "every queue contact in the interval figures", interval=0.5)
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.agent_intervals")[0][0] > 0, 60,
                 "agent figures stored", interval=0.5)
        yield SimulatedRun(sim, worker, env)
    finally:
        worker.stop()
