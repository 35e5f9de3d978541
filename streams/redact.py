"""One redaction for everything ccpulse prints, logs or serves: settings, error messages,
``/health`` and notifier errors. Credentials hide in URLs (``user:password@``), in query
strings (``?token=``) and in Slack's webhook paths."""
from __future__ import annotations

import logging
import re

# The password runs to the last "@" of the authority: a password may hold "@" (and ":").
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]*)(:[^/\s]*)?@(?=[^@/\s]*(?:[/?#\s]|$))")
_QUERY = re.compile(r"(?i)([?&;](?:token|access_token|api[_-]?key|key|secret|sig|signature|password|passwd|pass|"
                    r"auth|code|client_secret)=)[^&\s#'\"]+")
_SLACK = re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s'\"?#]+")
MASK = "***"


def redact(text: str) -> str:
    """``text`` with every credential it carries replaced by ``***``."""
    if not text:
        return text
    # user:password@ keeps the user; a lone user part (a token as user name) is masked whole
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@" if m.group(3) else f"{m.group(1)}{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _SLACK.sub(lambda m: f"{m.group(1)}{MASK}", text)


def install_log_redaction() -> None:
    """Every log record of this process, whatever handler prints it, is redacted."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_ccpulse_redacts", False):
        return

    def make(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)  # type: ignore[arg-type]
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a bad format string is the logger's problem, not ours
            return record
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    make._ccpulse_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)
