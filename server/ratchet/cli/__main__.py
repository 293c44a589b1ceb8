"""`python -m ratchet.cli`: the `ratchet` command, as the console script runs it."""

import sys

from ratchet.cli import main

sys.exit(main())
