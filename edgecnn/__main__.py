"""`python -m edgecnn ...` is the same as the `edgecnn` console command (and what torchrun runs)."""

from edgecnn.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
