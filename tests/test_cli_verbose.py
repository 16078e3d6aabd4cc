"""`biqa -v`: the library's INFO records (one per training epoch) reach stderr."""

from __future__ import annotations

import logging

from biqa_bench.cli import main


def test_verbose_sends_info_records_to_stderr_once(capsys):
    logger = logging.getLogger("biqa")
    before_handlers, before_level = list(logger.handlers), logger.level
    try:
        logger.info("hidden before -v")
        assert main(["-v", "datasets", "list"]) == 0
        assert main(["--verbose", "datasets", "list"]) == 0  # a second run in the process: no second handler
        logger.info("resnet50 train epoch 1: loss 3.5")
        err = capsys.readouterr().err
        assert "resnet50 train epoch 1: loss 3.5" in err and err.count("epoch 1") == 1
        assert "hidden before -v" not in err
    finally:
        logger.handlers[:] = before_handlers
        logger.setLevel(before_level)
