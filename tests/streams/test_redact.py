"""No secret is printed: one redaction for settings, errors, /health and logs."""
from __future__ import annotations

import logging

import pytest

from streams.redact import install_log_redaction, redact
from streams.config.settings import load_settings

SECRETS = ["s3cr3t-pw", "tok-123456", "T000/B000/XXXXsecretXXXX", "ghp_abcdef"]


@pytest.mark.parametrize("text, keeps", [
    ("clickhouse://ccpulse:s3cr3t-pw@db:9000/ccpulse unreachable", "clickhouse://ccpulse:***@db:9000/ccpulse"),
    ("POST https://hooks.example.com/in?token=tok-123456&x=1 failed", "https://hooks.example.com/in?token=***&x=1"),
    ("https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX: 404", "https://hooks.slack.com/services/***"),
    ("TooManyRedirects: https://user:ghp_abcdef@evil.example/next", "https://user:***@evil.example/next"),
    ("https://ghp_abcdef@api.example/hook", "https://***@api.example/hook"),
    ("nothing secret here: http://127.0.0.1:9000/x", "nothing secret here: http://127.0.0.1:9000/x"),
])
def test_credentials_in_urls_query_strings_and_slack_paths_are_masked(text: str, keeps: str) -> None:
    out = redact(text)
    assert keeps in out and not any(s in out for s in SECRETS)


def test_settings_dump_masks_every_url_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCPULSE_CLICKHOUSE_URL", "clickhouse://ccpulse:s3cr3t-pw@db:9000/ccpulse")
    monkeypatch.setenv("CCPULSE_ALERT_WEBHOOK_URL", "https://hooks.example.com/in?token=tok-123456")
    monkeypatch.setenv("CCPULSE_ALERT_SLACK_URL", "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX")
    monkeypatch.setenv("CCPULSE_ALERT_WEBHOOK_SECRET", "ghp_abcdef")
    shown = repr(load_settings().dump())
    assert not any(s in shown for s in SECRETS), shown


def test_log_records_are_redacted_whatever_prints_them(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("ccpulse.test").warning("notify %s failed", "https://a:s3cr3t-pw@h/x?sig=tok-123456")
    assert "s3cr3t-pw" not in caplog.text and "tok-123456" not in caplog.text and "https://a:***@h/x?sig=***" in caplog.text


def test_alert_urls_must_be_https_except_to_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.config.settings import ConfigError

    monkeypatch.setenv("CCPULSE_ALERT_WEBHOOK_URL", "http://hooks.example.com/in")
    with pytest.raises(ConfigError, match="alert_webhook_url must use https"):
        load_settings()
    monkeypatch.setenv("CCPULSE_ALERT_ALLOW_HTTP", "true")
    assert load_settings().alert_webhook_url == "http://hooks.example.com/in"
    monkeypatch.delenv("CCPULSE_ALERT_ALLOW_HTTP")
    for ok in ("https://hooks.example.com/in", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x"):
        monkeypatch.setenv("CCPULSE_ALERT_WEBHOOK_URL", ok)
        assert load_settings().alert_webhook_url == ok
