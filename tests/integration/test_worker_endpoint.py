"""The worker's HTTP endpoint attacked as a local program or a web page would: typed
queries run on a read-only, time-bounded connection of the engine's own, need the token
only the worker's user can read, and nothing of faust's internals is served. The attack
corpus (tests/attacks/worker_sql.txt) grows with every hole found."""
from __future__ import annotations

import http.server
import json
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.traffic.producer import from_event
from tests.integration.pipeline_helpers import send
from tests.services import Worker, run_cli, wait_for

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).resolve().parents[1] / "attacks" / "worker_sql.txt"
SECRET = "whsec-9f8e7d6c5b4a"


def _post(port: int, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _get(port: int, path: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers),
                                    timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _call(iid: str, t: int) -> list[dict[str, Any]]:
    from datetime import datetime, timezone

    def ev(typ: str, at: int, n: int, **kw: Any) -> dict[str, Any]:
        ts = datetime.fromtimestamp(at / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
        return {"type": typ, "event_id": f"{iid}:{n}", "ts": ts, "tenant": "acme", "interaction_id": iid,
                "channel": "voice", **kw}

    return [ev("offered", t, 1, queue="sales"), ev("answered", t + 20_000, 2, agent_id="a1"),
            ev("ended", t + 140_000, 3), ev("wrapup_ended", t + 150_000, 4)]


class _Exfil(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 -- the stdlib's name
        _Exfil.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x\n")

    def log_message(self, *args: Any) -> None:
        pass


def test_every_attack_in_the_corpus_is_refused_and_leaves_no_trace(pipeline_env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    env = dict(pipeline_env, CCPULSE_ALERT_WEBHOOK_SECRET=SECRET)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-31337\n")
    out = tmp_path / "written.csv"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exfil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exfil = f"http://127.0.0.1:{server.server_address[1]}/exfil"
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        token_file = Path(env["CCPULSE_STATE_DIR"]) / "worker-token"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        ok = worker.headers()
        attacks = [line.strip().format(CANARY=canary, OUT=out, EXFIL=exfil) for line in CORPUS.read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
        assert len(attacks) >= 30
        for sql in attacks:
            started = time.monotonic()
            status, text = _post(worker.port, "/sql", {"sql": sql}, ok)
            assert status == 400, (sql, status, text[:300])
            assert "CANARY" not in text and SECRET not in text and "root:" not in text, (sql, text[:300])
            assert time.monotonic() - started < 12, sql
        assert not out.exists() and _Exfil.hits == []
        assert worker.query("SELECT count() FROM ccpulse.raw_events") == [(0,)]  # nothing planted, nothing dropped
        # A legitimate query still works, and a slow one is stopped by the engine's own limit.
        assert worker.query("SELECT count() FROM system.tables WHERE database = 'ccpulse'")[0][0] > 10
        started = time.monotonic()
        status, text = _post(worker.port, "/sql", {"sql": "SELECT count() FROM numbers(100000000000)"}, ok)
        assert status == 400 and ("TOO_MANY_ROWS" in text or "Timeout" in text or "TIMEOUT" in text), text[:300]
        assert time.monotonic() - started < 15
        # A slow query (three 2.7 s sleeps, one after the other) does not hold up the writes:
        # contacts sent after it started are stored long before it ends.
        slow_sql = "SELECT " + " + ".join(f"(SELECT sum(sleepEachRow(0.9{k})) FROM numbers(3))" for k in range(3))
        slow: dict[str, Any] = {}
        t = threading.Thread(target=lambda: slow.update(r=_post(worker.port, "/sql", {"sql": slow_sql}, ok),
                                                          at=time.monotonic()))
        started = time.monotonic()
        t.start()
        time.sleep(0.5)
        send(env, [from_event(e) for i in range(20) for e in _call(f"w{i}", 1_767_258_000_000 + i * 1000)])
        wait_for(lambda: worker.health()["rows_written"].get("interactions", 0) >= 20, 30, "the records stored")
        stored_at = time.monotonic()
        t.join(30)
        assert slow["r"][0] == 200 and json.loads(slow["r"][1])["rows"] == [[0]], slow
        assert slow["at"] - started > 7.5 and stored_at < slow["at"] - 1, \
            (f"records stored {stored_at - started:.1f} s after the slow query began, which took "
             f"{slow['at'] - started:.1f} s: the writes waited for it")
        # Who may ask: the token's holder, from a program.
        body = {"sql": "SELECT 1"}
        assert _post(worker.port, "/sql", body, {"Content-Type": "application/json"})[0] == 401
        wrong = dict(ok, Authorization="Bearer " + "0" * 64)
        assert _post(worker.port, "/sql", body, wrong)[0] == 401
        assert _post(worker.port, "/sql", body, dict(ok, Origin="http://evil.example"))[0] == 403
        assert _post(worker.port, "/sql", body, dict(ok, **{"Content-Type": "text/plain"}))[0] == 415
        assert _post(worker.port, "/verify", {"from_ms": 0, "to_ms": 1}, {"Content-Type": "application/json"})[0] \
            == 401
        for page in ("/debug/tasks", "/table/", "/router/", "/graph/", "/stats/"):
            assert _get(worker.port, page, ok) == 404, page
        assert _get(worker.port, "/health", {}) == 200  # supervisors need no token
        # `ccpulse sql` as a user types it sends the token by itself.
        p = run_cli(env, "sql", "SELECT 40 + 2 AS x", "--format", "csv")
        assert p.stdout.strip().splitlines()[-1] == "42"
    finally:
        worker.stop()
        server.shutdown()
