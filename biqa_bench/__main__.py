"""``python -m biqa_bench`` = the ``biqa`` command (useful where the console script is not installed)."""

from biqa_bench.cli import console_main

if __name__ == "__main__":
    console_main()
