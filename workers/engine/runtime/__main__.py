"""The runtime's command line: `python -m workers.engine.runtime`, or faster, as `command()` runs it, this file
by its path under `python -S` (no runpy, no site: together a fifth of a `run` of /bin/true)."""

import os
import sys

# This command line is started per container (the monitor runs `create` and `start` for each): without bytecode
# every call compiles the runtime's modules again (at load 44: 946 ms a call against 240 ms with .pyc, against
# `python -c pass` 127 ms). PYTHONDONTWRITEBYTECODE, or sources newer than the .pyc of `make pyc` (after a pull),
# would make every call pay that; the modules imported from here on are written once instead.
sys.dont_write_bytecode = False

if not __package__:  # run by path: the checkout is three levels up, not this file's directory
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

from workers.engine.runtime.cli import main  # noqa: E402 - after the lines above

code = main()
# Out without the interpreter's teardown (module and object clean-up, about 2 ms of a `run`): nothing here
# needs it (no atexit work, no threads to join), as long as what was printed is written first.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
