"""``python -m vicinal`` (and ``torchrun -m vicinal``): the ``vicinal`` command."""

from vicinal.experiments.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
