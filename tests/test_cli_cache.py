"""`biqa datasets cache`: builds the decode-once cache once, reuses it, refuses bad sizes."""

from biqa_bench.cli import main


def test_datasets_cache_builds_then_reuses(tiny_dataset, capsys, tmp_path):
    assert main(["datasets", "cache", "tiny", "--size", "16x16", "--workers", "1"]) == 0
    first = capsys.readouterr().out
    assert "tiny: 40 images at 16x16" in first
    assert main(["datasets", "cache", "tiny", "--size", "16x16", "--workers", "1"]) == 0
    second = capsys.readouterr().out
    assert first.split(" in ")[1].split(" (")[0] == second.split(" in ")[1].split(" (")[0]  # same folder


def test_datasets_cache_refuses_a_bad_size(tiny_dataset, capsys):
    assert main(["datasets", "cache", "tiny", "--size", "16xab"]) == 2
    err = capsys.readouterr().err
    assert "image cache size must be" in err and len(err.strip().splitlines()) == 1
