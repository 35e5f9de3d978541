"""``ccpulse grafana ...`` subcommands (filled in by the Grafana work)."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the grafana subcommands to ``parser``."""
    parser.add_subparsers(dest="grafana_command", metavar="ACTION")
