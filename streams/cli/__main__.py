"""``python -m streams.cli``: the same as the ``ccpulse`` command."""
import sys

from streams.cli.main import main

sys.exit(main())
