"""``python -m vicinal`` (and ``torchrun -m vicinal``): the ``vicinal`` command, through its entry point (a missing
``lab`` extra or a non-POSIX system is a one-line error there)."""

from vicinal_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
