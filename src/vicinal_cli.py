"""Entry point of the ``vicinal`` command, kept outside the ``vicinal`` package on purpose.

Importing the package imports torch, which takes about a second. A Ctrl-C in that second must end the command
like a Ctrl-C at any later moment (one line, exit code 130), and only code that runs before the import can
arrange that: any module inside the package would run ``vicinal/__init__`` first.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Import the lab's command line and run it; a Ctrl-C during the import exits 130 with one line."""
    try:
        from vicinal.experiments.cli import main as cli_main
    except KeyboardInterrupt:
        print("vicinal: interrupted", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
