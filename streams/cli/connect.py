"""``ccpulse connect``: read a platform's own records into ccpulse (streams/connectors/)."""
from __future__ import annotations

import argparse
import sys
import signal
from pathlib import Path
from typing import Any, Callable

from streams.cli.common import CliError, print_result, settings_of


def configure(add: Callable[..., argparse.ArgumentParser]) -> None:
    c = add("connect", lambda a: 0, "read a telephony platform's own records into ccpulse")
    sub = c.add_subparsers(dest="connector", required=True, metavar="PLATFORM")
    ast = sub.add_parser("asterisk", help="Asterisk / FreePBX queue_log: replay it, or follow it as it grows "
                                          "(rotation-safe, resuming from its stored position)")
    ast.set_defaults(fn=cmd_asterisk)
    ast.add_argument("--queue-log", required=True, help="the queue_log file (/var/log/asterisk/queue_log)")
    ast.add_argument("--tenant", required=True, help="the tenant its calls belong to")
    ast.add_argument("--follow", action="store_true", help="keep reading as the file grows (until stopped)")
    ast.add_argument("--from-start", action="store_true",
                     help="read the whole file again, not from the stored position (a replay counts nothing twice)")
    ac = sub.add_parser("amazon-connect", help="Amazon Connect contact trace records: a folder of CTR files "
                                               "(as Kinesis Data Firehose delivers them), read once or followed")
    ac.set_defaults(fn=cmd_amazon_connect)
    ac.add_argument("--ctr", required=True, help="the folder of CTR files")
    ac.add_argument("--tenant", required=True)
    ac.add_argument("--follow", action="store_true", help="keep reading new files (until stopped)")
    ac.add_argument("--from-start", action="store_true", help="read every file again")
    rn = sub.add_parser("run", help="every connector the centre file names (connectors:), followed until stopped")
    rn.set_defaults(fn=cmd_run)
    st = sub.add_parser("status", help="each connector's lines, events, skipped verbs and dead letters")
    st.set_defaults(fn=cmd_status)
    st.add_argument("--format", choices=["table", "csv", "json"], default="table")


def _run(args: argparse.Namespace, source: Path, run: Callable[..., Any], what: str) -> int:
    """The tenant checked, SIGTERM and Ctrl-C ending a --follow cleanly (after its batch), a summary."""
    from streams.domain.recount import quote

    s = settings_of(args)
    try:
        quote(args.tenant)
    except ValueError as e:
        raise CliError(str(e)) from None
    stopping = {"now": False}

    def stop(*_: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        st = run(s, source, follow=args.follow, from_start=args.from_start, stop=lambda: stopping["now"])
    except ConnectionError as e:
        raise CliError(str(e)) from None
    print(f"{source}: {st.lines:,} {what} read so far: {st.events:,} events, {st.skipped:,} skipped, "
          f"{st.dead_letters:,} dead letters" + (f" {st.by_reason}" if st.by_reason else ""))
    return 0


def cmd_asterisk(args: argparse.Namespace) -> int:
    from streams.connectors.queue_log import map_line
    from streams.connectors.run import run_lines

    path = Path(args.queue_log)
    if not path.exists() and not args.follow:
        raise CliError(f"{path}: no such file (with --follow the connector waits for it)")
    return _run(args, path, lambda s, p, **kw: run_lines(s, "asterisk", p, lambda line: map_line(line, args.tenant), **kw),
                "lines")


def cmd_amazon_connect(args: argparse.Namespace) -> int:
    from streams.connectors.run import run_ctr_dir

    folder = Path(args.ctr)
    if not folder.is_dir():
        raise CliError(f"{folder}: not a folder of contact record files")
    return _run(args, folder, lambda s, p, **kw: run_ctr_dir(s, p, args.tenant, **kw), "contact records")


def cmd_run(args: argparse.Namespace) -> int:
    """Each configured source in a thread of its own, following it; SIGTERM or Ctrl-C stops them all
    after their batch (positions stored)."""
    import threading

    from streams.config.centre import load_centre
    from streams.connectors.queue_log import map_line
    from streams.connectors.run import run_ctr_dir, run_lines
    from streams.domain.recount import quote

    s = settings_of(args)
    conf = load_centre(s.centre_config).connectors
    jobs: list[tuple[str, Callable[[Callable[[], bool]], Any]]] = []
    stopping = threading.Event()
    for a in conf.asterisk:
        jobs.append((f"asterisk {a.queue_log} ({a.tenant})", lambda stop, a=a: run_lines(
            s, "asterisk", a.queue_log, lambda line, t=a.tenant: map_line(line, t), follow=True, stop=stop)))
    for c in conf.amazon_connect:
        jobs.append((f"amazon-connect {c.ctr} ({c.tenant})", lambda stop, c=c: run_ctr_dir(
            s, c.ctr, c.tenant, follow=True, stop=stop)))
    if not jobs:
        raise CliError("the centre file names no connector: add connectors: {asterisk: [{queue_log: FILE, tenant: T}], "
                       "amazon_connect: [{ctr: DIR, tenant: T}]} (docs/connectors/)")
    try:
        for t in [a.tenant for a in conf.asterisk] + [c.tenant for c in conf.amazon_connect]:
            quote(t)
    except ValueError as e:
        raise CliError(str(e)) from None
    from streams.connectors.run import clear_failure, note_failure

    def guarded(name: str, job: Callable[[Callable[[], bool]], Any]) -> None:
        """One source, apart from the others: a failure is logged, shown by ``connect status`` and
        retried with backoff (1 s doubling to 60 s); it never stops another source. Once a retry
        has read a whole round, the failure leaves ``connect status``."""
        failures = 0
        while not stopping.is_set():
            rounds = 0

            def stop() -> bool:  # asked before each round of reading
                nonlocal rounds
                rounds += 1
                if rounds == 2 and failures:
                    clear_failure(s, name)
                return stopping.is_set()

            try:
                job(stop)
                return
            except Exception as e:  # noqa: BLE001 -- one source failing must not stop the others
                failures += 1
                wait = min(60.0, 2.0 ** (failures - 1))
                note_failure(s, name, f"{type(e).__name__}: {e}", failures, wait)
                print(f"ccpulse connect: {name}: {e} (failure {failures}; retrying in {wait:.0f} s)",
                      file=sys.stderr, flush=True)
                stopping.wait(wait)

    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    threads = [threading.Thread(target=guarded, args=job, name=job[0]) for job in jobs]
    for th in threads:
        th.start()
    print(f"following {len(jobs)} source(s): " + "; ".join(name for name, _ in jobs), flush=True)
    while any(th.is_alive() for th in threads):
        for th in threads:
            th.join(0.5)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from streams.connectors.run import read_statuses

    rows = [[d.get("connector"), d.get("source"), d.get("lines"), d.get("events"), d.get("skipped"),
             d.get("dead_letters"), d.get("offset"), d.get("updated_at"), d.get("error")]
            for d in read_statuses(settings_of(args))]
    print_result(["connector", "source", "lines", "events", "skipped", "dead_letters", "offset", "updated_at",
                  "error"], rows, args.format)
    return 0
