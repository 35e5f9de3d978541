"""Attacks on ``ccpulse intake`` (issue 24), each against a real intake process and broker.

Who can reach it: anyone on its network, and for ``/v1/twilio/<tenant>`` the internet. What
they must get: a 4xx or 503 within seconds, never a traceback, never the intake's memory or
connections, never another tenant's figures. Every attack here failed before its fix.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from streams.intake.limits import HEADER_TIMEOUT_S
from tests.conftest import make_env
from tests.services import REPO, Broker, ccpulse_cmd, free_port, run_cli, wait_for

pytestmark = pytest.mark.integration
AUTH = "0123456789abcdef0123456789abcdef"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _up(port: int) -> bool:
    try:
        return _request(port, "GET", "/health")[0] == 200
    except OSError:
        return False


def _intake(env: dict[str, str], tmp: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(ccpulse_cmd("intake", "--port", str(port), *extra), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"intake-{port}.log", "w"))
    wait_for(lambda: _up(port), 30, "the intake listening", interval=0.2)
    return proc, port


@pytest.fixture(scope="module")
def intake(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("intake-attacks")
    env = make_env(tmp, broker)
    run_cli(env, "setup")
    token = run_cli(env, "intake", "token", "--tenant", "acme").stdout.strip()
    run_cli({**env, "TWILIO_AUTH_TOKEN": AUTH}, "intake", "twilio", "--tenant", "flex")
    proc, port = _intake(env, tmp, "--public-url", "https://cc.example.com/hook")
    try:
        yield {"env": env, "port": port, "token": token, "proc": proc, "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(20)


def _request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             timeout: float = 20) -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return _raw(port, head.encode() + b"\r\n" + body, timeout)


def _raw(port: int, data: bytes, timeout: float = 20) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return _response(s)


def _response(s: socket.socket) -> tuple[int, bytes]:
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), None)
    while length is not None and len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split(b" ")[1]), rest


def _sign(url: str, form: dict[str, str], key: str = AUTH) -> str:
    payload = url + "".join(f"{k}{form[k]}" for k in sorted(form))
    return base64.b64encode(hmac.new(key.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _callback(port: int, form: dict[str, str], path: str = "/v1/twilio/flex", signature: str | None = None) -> tuple[int, bytes]:
    url = "https://cc.example.com/hook" + path
    return _request(port, "POST", path, urllib.parse.urlencode(form).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": signature or _sign(url, form)})


def _form(**kw: str) -> dict[str, str]:
    return {"EventType": "task.created", "Sid": "EV1", "Timestamp": str(int(time.time())), "TaskSid": "WT1",
            "TaskQueueName": "Support", "TaskChannelUniqueName": "voice", **kw}


def _huge_post(port: int, path: str, headers: dict[str, str], declared: int | None, send_mb: int) -> tuple[int, float]:
    """Headers of a huge body, then up to ``send_mb`` MB of it while the answer is awaited:
    (status, MB sent before the answer came)."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {declared}\r\n" if declared is not None else "Transfer-Encoding: chunked\r\n"
    chunk = b"[" + b"1," * (512 * 1024 - 1) + b"1"  # 1 MB of almost-JSON
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode() + b"\r\n")
        s.setblocking(False)
        sent = 0
        got = b""
        for _ in range(send_mb):
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            if got:
                break
            piece = chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            try:
                s.sendall(piece)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        s.setblocking(True)
        s.settimeout(20)
        try:
            status, _ = _response(s) if not got else (int(got.split(b" ")[1]), b"")
        except ConnectionResetError:
            status = 0
    return status, sent


def test_unauthenticated_twilio_posts_are_refused_unread(intake: dict[str, Any]) -> None:
    port = intake["port"]
    status, sent = _huge_post(port, "/v1/twilio/anyone", {"Content-Type": "application/x-www-form-urlencoded"},
                              150 * 1024 * 1024, 150)
    assert status == 403 and sent < 150
    # A tenant that has a Twilio token: at most 64 kB is read before the signature check.
    status, sent = _huge_post(port, "/v1/twilio/flex", {"Content-Type": "application/x-www-form-urlencoded",
                                                        "X-Twilio-Signature": "x"}, 150 * 1024 * 1024, 150)
    assert status == 413 and sent < 150
    assert _rss_mb(intake["proc"].pid) < 150


def test_a_chunked_body_past_the_limit_is_refused_while_it_is_still_coming(intake: dict[str, Any]) -> None:
    status, sent = _huge_post(intake["port"], "/v1/events", {"Content-Type": "application/json",
                                                              "Authorization": f"Bearer {intake['token']}"}, None, 300)
    assert status == 413 and sent < 300
    assert _rss_mb(intake["proc"].pid) < 150


def test_slow_heads_are_cut_off_and_do_not_starve_anyone(intake: dict[str, Any]) -> None:
    port = intake["port"]
    idle = []
    for _ in range(195):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # a head never finished
        idle.append(s)
    try:
        assert _request(port, "GET", "/health") == (200, b'{"status":"ok"}')  # served meanwhile
        time.sleep(HEADER_TIMEOUT_S + 3)
        closed = 0
        for s in idle:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
        assert closed == len(idle)
    finally:
        for s in idle:
            s.close()


def test_a_body_sent_a_byte_at_a_time_times_out(intake: dict[str, Any]) -> None:
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {intake['token']}\r\nContent-Length: 1000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", intake["port"]), timeout=40) as s:
        s.sendall(head)
        start = time.monotonic()
        s.setblocking(False)
        got = b""
        while not got and time.monotonic() - start < 35:
            try:
                s.sendall(b"[")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(2)
            try:
                got = s.recv(65536)
            except BlockingIOError:
                pass
    assert got.startswith(b"HTTP/1.1 408"), got[:80]


def test_malformed_input_gets_a_clear_4xx_not_a_traceback(intake: dict[str, Any]) -> None:
    port, token = intake["port"], intake["token"]
    raw = (b"POST /v1/twilio/flex HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"X-Twilio-Signature: \xff\xfe\xc3\xa9\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b")
    assert _raw(port, raw)[0] == 403
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = _request(port, "POST", "/v1/events", deep, {"Content-Type": "application/json",
                                                               "Authorization": f"Bearer {token}"})
    assert status == 400 and json.loads(body)["reason"] == "invalid_json"
    status, body = _request(port, "POST", "/v1/events", b"{}", {"Content-Type": "application/json",
                                                                "Authorization": f"Bearer {token}",
                                                                "Content-Length": "-5"})
    assert status in (400, 413)


@pytest.mark.parametrize("form", [
    _form(Timestamp=str(10 ** 20)),                               # past datetime's years
    _form(TaskAttributes="[1]"),                                  # attributes not an object
    _form(TaskAttributes="[" * 10_000 + "]" * 10_000),            # deep nesting (60 kB: under the limit)
], ids=["timestamp-1e20", "attributes-list", "attributes-deep"])
def test_signed_callbacks_the_mapper_cannot_read_are_dead_lettered_or_mapped(intake: dict[str, Any],
                                                                              form: dict[str, str]) -> None:
    status, body = _callback(intake["port"], form)
    assert status == 200, body
    assert json.loads(body).get("dead_letter") or json.loads(body).get("accepted") == 1


def test_a_signed_callback_from_long_ago_is_not_taken(intake: dict[str, Any]) -> None:
    status, body = _callback(intake["port"], _form(Timestamp="1546300800"))  # 2019-01-01
    assert status == 403 and json.loads(body)["reason"] == "stale_callback"


def test_a_callback_url_with_a_query_string_can_be_signed(intake: dict[str, Any]) -> None:
    form = _form(Sid="EV-query")
    path = "/v1/twilio/flex?source=taskrouter"
    assert _callback(intake["port"], form, path=path)[0] == 200


def test_health_says_nothing_of_any_tenant_and_stats_only_the_tokens_own(intake: dict[str, Any]) -> None:
    port = intake["port"]
    assert _request(port, "GET", "/health") == (200, b'{"status":"ok"}')
    assert _request(port, "GET", "/v1/stats")[0] == 401
    status, body = _request(port, "GET", "/v1/stats", headers={"Authorization": f"Bearer {intake['token']}"})
    assert status == 200 and json.loads(body)["tenant"] == "acme" and "flex" not in body.decode()


def test_a_broker_outage_is_a_fast_503_on_every_route(broker: Broker, tmp_path: Path) -> None:
    own = Broker(tmp_path / "broker").start()
    env = make_env(tmp_path, own)
    run_cli(env, "setup")
    token = run_cli(env, "intake", "token", "--tenant", "acme").stdout.strip()
    run_cli({**env, "TWILIO_AUTH_TOKEN": AUTH}, "intake", "twilio", "--tenant", "flex")
    proc, port = _intake(env, tmp_path)
    try:
        own.stop()
        event = {"type": "offered", "event_id": "e1", "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "tenant": "acme", "interaction_id": "c1", "channel": "voice", "queue": "q"}
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        took = []
        for _ in range(3):
            start = time.monotonic()
            status, _ = _request(port, "POST", "/v1/events", json.dumps(event).encode(), headers)
            took.append(time.monotonic() - start)
            assert status == 503
        assert took[0] < 10 and max(took[1:]) < 1, took
        form = _form()
        url = f"http://127.0.0.1:{port}/v1/twilio/flex"
        status, _ = _request(port, "POST", "/v1/twilio/flex", urllib.parse.urlencode(form).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded",
                              "X-Twilio-Signature": _sign(url.replace(f"127.0.0.1:{port}", "127.0.0.1"), form)})
        assert status in (403, 503)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_leftover_temp_file_never_makes_a_secret_readable(tmp_path: Path) -> None:
    from streams.intake import tokens

    tmp = tokens.twilio_path(tmp_path).with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("{}")
    tmp.chmod(0o644)
    tokens.set_twilio(tmp_path, "flex", AUTH)
    assert tokens.twilio_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert tokens.twilio_token(tmp_path, "flex") == AUTH
