"""The `ccpulse` command line (main.py) and its subcommands."""
