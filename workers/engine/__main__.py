"""`python -m workers.engine` (the `berth` command): the engine's host command line."""

import sys

from .cli.main import main

sys.exit(main())
