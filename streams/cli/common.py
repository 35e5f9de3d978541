"""What the command line's modules share (streams/cli/main.py and the subcommands it loads:
demo, verify, grafana): the error a person reads, the settings, the traffic a command
produces, and how a result table is printed. It imports none of them."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from streams.config.settings import Settings, load_settings


class CliError(Exception):
    """An error for a person: printed as one line with what to do next, exit code 2."""


def settings_of(args: argparse.Namespace) -> Settings:
    if getattr(args, "config", None):
        os.environ["CCPULSE_CONFIG"] = args.config
    return load_settings()


# --- commands -------------------------------------------------------------------------

def sim_messages(args: argparse.Namespace) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    import random

    from streams.traffic.producer import from_event
    from streams.traffic.simulate import SimConfig, event_time_order, simulate

    # The whole centre: queues, the IVR in front of them, outbound campaigns.
    cfg = SimConfig.product(seed=args.seed, interactions=args.interactions,
                            **({"start": args.start} if getattr(args, "start", None) else {}))
    sim = simulate(cfg)
    events = event_time_order(sim)
    out = [from_event(e) for e in events]
    rnd = random.Random(args.seed)
    if args.duplicates:
        out += [out[i] for i in rnd.sample(range(len(out)), int(len(out) * args.duplicates))]
    if args.shuffle:
        rnd.shuffle(out)
    return out, sim.truth


def replay_messages(path: Path, fmt: str) -> tuple[list[Any], Any]:
    if not path.exists():
        raise CliError(f"{path}: no such file")
    from streams.traffic import replay
    from streams.traffic.producer import Outgoing, from_event

    try:
        if fmt == "jsonl":
            return [Outgoing(r.kind, r.key, r.value) for r in replay.iter_jsonl(path)], None
        stats = replay.AnonymousBankStats()
        events = [from_event(e) for e in replay.iter_anonymous_bank(path, stats=stats)]
    except replay.ReplayError as e:
        raise CliError(str(e)) from None
    return events, stats


def print_result(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps([dict(zip(columns, map(_plain, r))) for r in rows], default=str) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(columns)
        w.writerows([[neutral(_plain(v)) for v in r] for r in rows])  # a name is never a formula
    else:
        cells = [[str(_plain(v)) for v in r] for r in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def neutral(v: Any) -> Any:
    from streams.reports.cells import neutral as cell

    return cell(v)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
