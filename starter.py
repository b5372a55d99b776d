"""orderflow — the console script `orderflow` (`python starter.py ...` is the same program).

The commands live in entrypoints/cli/app.py. In a source checkout the development room adds `seed` and `demo`
(dev/cli.py); an installed package carries no demo world, and says so.
"""

from __future__ import annotations

from importlib.util import find_spec

from entrypoints.cli.app import add_source_only_commands, app, main

if find_spec("dev") is not None:  # a source checkout: dev/ sits beside this file (the wheel leaves it out)
    from dev.cli import add_dev_commands

    add_dev_commands(app)
else:
    add_source_only_commands(app)

if __name__ == "__main__":
    main()
