import sys

# This command line is started per container (the monitor runs `create` and `start` for each): without bytecode
# every call compiles the runtime's modules again (at load 44: 946 ms a call against 240 ms with .pyc, against
# `python -c pass` 127 ms). PYTHONDONTWRITEBYTECODE, or sources newer than the .pyc of `make pyc` (after a pull),
# would make every call pay that; the modules imported from here on are written once instead.
sys.dont_write_bytecode = False

from .cli import main  # noqa: E402 - after the line above, so that its modules get their .pyc

sys.exit(main())
