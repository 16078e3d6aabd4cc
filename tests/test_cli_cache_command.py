"""`biqa cache info` / `biqa cache clear`: sizes as the files say, nothing deleted without --yes,
only the parts named, generated data sets never."""

from __future__ import annotations

import json
import os

from biqa_bench.cli import main
from biqa_bench.config import CACHE_KINDS, cache_dir


def _fill(kind: str, sizes: list[int]) -> None:
    folder = cache_dir() / kind / "entry"
    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        (folder / f"f{i}.bin").write_bytes(os.urandom(size))


def test_info_counts_files_and_bytes(capsys):
    _fill("enhance", [1000, 2500])
    _fill("pretrain", [7])
    assert main(["cache", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_kind = {row["kind"]: row for row in report["kinds"]}
    assert list(by_kind) == list(CACHE_KINDS)
    assert (by_kind["enhance"]["files"], by_kind["enhance"]["bytes"], by_kind["enhance"]["entries"]) == (2, 3500, 1)
    assert (by_kind["pretrain"]["files"], by_kind["pretrain"]["bytes"]) == (1, 7)
    assert by_kind["images"]["bytes"] == 0 and report["cache"] == str(cache_dir())
    assert main(["cache", "info"]) == 0
    assert "3.4 KiB" in capsys.readouterr().out  # 3,507 bytes in all


def test_clear_needs_yes_and_deletes_only_the_named_parts(capsys):
    _fill("enhance", [100])
    _fill("features", [200])
    _fill("synth", [300])
    assert main(["cache", "clear", "enhance"]) == 0
    out = capsys.readouterr().out
    assert "would delete enhance: 1 files" in out and "nothing deleted" in out
    assert (cache_dir() / "enhance" / "entry" / "f0.bin").is_file()

    assert main(["cache", "clear", "enhance", "--yes"]) == 0
    assert "deleted enhance: 1 files, 100 B" in capsys.readouterr().out
    assert not (cache_dir() / "enhance").exists()
    assert (cache_dir() / "features" / "entry" / "f0.bin").is_file()

    assert main(["cache", "clear", "all", "--yes"]) == 0
    assert not (cache_dir() / "features").exists()
    assert (cache_dir() / "synth" / "entry" / "f0.bin").is_file()  # generated data sets are data


def test_clear_refuses_synth_and_unknown_parts_in_one_line(capsys):
    _fill("synth", [10])
    assert main(["cache", "clear", "synth", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "not a cache" in err and len(err.strip().splitlines()) == 1
    assert (cache_dir() / "synth" / "entry" / "f0.bin").is_file()
    assert main(["cache", "clear", "enhanse", "--yes"]) == 2
    assert "unknown cache part 'enhanse'" in capsys.readouterr().err


def test_clear_removes_what_an_interrupted_clear_left(capsys):
    _fill("enhance", [10])
    leftover = cache_dir() / "enhance.deleting-12345"
    leftover.mkdir()
    (leftover / "x.bin").write_bytes(b"abc")
    assert main(["cache", "clear", "enhance", "--yes"]) == 0
    assert "13 B" in capsys.readouterr().out
    assert not leftover.exists() and not (cache_dir() / "enhance").exists()
