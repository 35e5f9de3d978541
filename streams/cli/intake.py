"""``ccpulse intake``: the HTTP intake (streams/intake/app.py) as its own process; ``ccpulse intake
token --tenant T`` issues a tenant's token."""
from __future__ import annotations

import argparse
from typing import Callable

from streams.cli.common import CliError, settings_of


def configure(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("intake", cmd_intake, "serve POST /v1/events: events in ccpulse's JSON contract over HTTP, "
                                   "a token per tenant")
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 behind a proxy)")
    sp.add_argument("--port", type=int, default=8088)
    sub = sp.add_subparsers(dest="intake_command", metavar="ACTION")
    tok = sub.add_parser("token", help="issue a token that writes one tenant's events (printed once)")
    tok.add_argument("--tenant", required=True)
    tw = sub.add_parser("twilio", help="store a tenant's Twilio auth token (from $TWILIO_AUTH_TOKEN) for its "
                                       "TaskRouter callbacks at /v1/twilio/TENANT")
    tw.add_argument("--tenant", required=True)
    sp.add_argument("--public-url", help="the URL Twilio calls, when a proxy is in front (https://host)")


def cmd_intake(args: argparse.Namespace) -> int:
    from streams.domain.recount import quote
    from streams.intake import tokens

    s = settings_of(args)
    if getattr(args, "intake_command", None) == "twilio":
        import os

        secret = os.environ.get("TWILIO_AUTH_TOKEN", "").strip()
        if not secret:
            raise CliError("set TWILIO_AUTH_TOKEN to the account's auth token (it stays out of the process list)")
        try:
            quote(args.tenant)
        except ValueError as e:
            raise CliError(str(e)) from None
        tokens.set_twilio(s.state_dir, args.tenant, secret)
        print(f"TaskRouter callbacks of {args.tenant}: POST <this intake>/v1/twilio/{args.tenant}")
        return 0
    if getattr(args, "intake_command", None) == "token":
        try:
            quote(args.tenant)
        except ValueError as e:
            raise CliError(str(e)) from None
        print(tokens.issue(s.state_dir, args.tenant))
        return 0
    from streams.intake.app import create
    from streams.intake.limits import serve

    if not tokens.load(s.state_dir):
        print(f"no intake token yet: every request will be refused (ccpulse intake token --tenant T); "
              f"tokens live in {tokens.tokens_path(s.state_dir)}")
    serve(create(s, args.public_url), args.host, args.port)
    return 0
