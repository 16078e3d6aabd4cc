"""`biqa train --force` never loses a finished run (#21): the retraining is staged beside it and
swapped in only when complete; a process killed mid-split or mid-swap leaves the old run or the
new one, never neither."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from biqa_bench.cli import main
from biqa_bench.store import find_runs, is_complete, previous_dir, recover_run, staged_run, staging_dir, swap_in, write_run

REPO = Path(__file__).resolve().parents[1]

SLOW_METHOD = '''
import os
import time

import numpy as np

from biqa_bench.methods import Method, register_method


@register_method("slow-brightness")
class SlowBrightness(Method):
    """Test method: mean brightness; with $BIQA_TEST_MARKER set, fit announces itself and hangs."""

    def fit(self, train_items, val_items, ctx):
        marker = os.environ.get("BIQA_TEST_MARKER")
        if marker:
            with open(marker + ".tmp", "w") as handle:
                handle.write(str(ctx.work_dir))
            os.replace(marker + ".tmp", marker)
            time.sleep(300)
        return self

    def predict(self, items, ctx):
        return np.array([ctx.read_image(p).mean() for p in items["path"]])
'''


@pytest.fixture
def slow_method(tmp_path_factory, monkeypatch) -> Path:
    folder = tmp_path_factory.mktemp("methods")
    (folder / "slow_brightness.py").write_text(SLOW_METHOD)
    from biqa_bench import methods

    if "slow-brightness" not in methods.discover():
        spec = importlib.util.spec_from_file_location("biqa_test_slow_brightness", folder / "slow_brightness.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    monkeypatch.setenv("BIQA_METHODS_PATH", str(folder))
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _environment(**extra) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_force_killed_mid_split_keeps_the_previous_run(tiny_dataset, slow_method, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["train", "-m", "slow-brightness", "-d", "tiny", "-n", "2", "-o", str(out), "-q"]) == 0
    split0 = out / "tiny" / "slow-brightness" / "split_00"
    before = _snapshot(split0)
    assert "manifest.json" in before and "predictions.csv" in before
    capsys.readouterr()

    marker = tmp_path / "fitting"
    process = subprocess.Popen(
        [sys.executable, "-m", "biqa_bench", "train", "-m", "slow-brightness", "-d", "tiny", "-n", "2", "-o", str(out),
         "-q", "--force", "--only", "0"],
        env=_environment(BIQA_TEST_MARKER=str(marker)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the retraining never started"
            time.sleep(0.1)
        assert Path(marker.read_text()) == staging_dir(split0)  # it trains beside the run, not in it
        assert _snapshot(split0) == before  # nothing of the old run touched while training
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    assert _snapshot(split0) == before  # the finished run is intact ...
    runs = find_runs(out)
    assert sorted(r.folder.name for r in runs) == ["split_00", "split_01"]  # ... and the staging folder is no run
    assert main(["eval", str(out)]) == 0  # ... and evaluable
    assert "2 of 2 splits" in capsys.readouterr().out

    # the next --force run empties the stale staging folder and swaps a complete run in
    assert main(["train", "-m", "slow-brightness", "-d", "tiny", "-n", "2", "-o", str(out), "-q", "--force", "--only", "0"]) == 0
    assert not staging_dir(split0).exists() and is_complete(split0)
    after = json.loads((split0 / "manifest.json").read_text())
    assert after["split"] == 0 and len(pd.read_csv(split0 / "predictions.csv")) == after["n_test"]


def _complete_run(folder: Path, tag: str) -> None:
    predictions = pd.DataFrame({
        "item_id": ["a", "b", "c"], "dataset": "d", "split": 0, "subset": "test",
        "quality": [10.0, 50.0, 90.0], "score": [1.0, 3.0, 5.0], "prediction": [0.1, 0.2, 0.4],
    })
    write_run(folder, predictions, {"method": "m", "train_dataset": "d", "split": 0, "tag": tag, "n_test": 3})


KILL_SWAP = textwrap.dedent('''
    import os, shutil, signal, sys
    from pathlib import Path
    from biqa_bench import store

    folder, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "renames":  # a file system without RENAME_EXCHANGE: killed between the two renames
        store._rename_exchange = lambda a, b: False
        real_rename = os.rename
        def rename(src, dst):
            real_rename(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        store.os.rename = rename
    else:  # killed after the atomic exchange, before the old run is deleted
        store.shutil.rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    with store.staged_run(folder) as target:
        (target / "predictions.csv").write_bytes((folder / "predictions.csv").read_bytes())
        manifest = (folder / "manifest.json").read_text().replace('"old"', '"new"')
        (target / "manifest.json").write_text(manifest)
''')


@pytest.mark.parametrize("mode", ["renames", "exchange"])
def test_a_swap_killed_halfway_leaves_the_old_or_the_new_run(tmp_path, mode, capsys):
    if mode == "exchange":
        from biqa_bench.store import _rename_exchange

        (tmp_path / "x").mkdir()
        (tmp_path / "y").mkdir()
        if not _rename_exchange(tmp_path / "x", tmp_path / "y"):
            pytest.skip("this file system has no atomic exchange")
    out = tmp_path / "res"
    folder = out / "d" / "m" / "split_00"
    _complete_run(folder, "old")
    result = subprocess.run([sys.executable, "-c", KILL_SWAP, str(folder), mode], env=_environment(), capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    runs = find_runs(out)
    assert len(runs) == 1  # never neither, never both
    tag = runs[0].manifest["tag"]
    assert tag == ("old" if mode == "renames" else "new")
    if mode == "renames":
        assert not folder.exists() and runs[0].folder == previous_dir(folder)
    assert len(runs[0].predictions()) == 3
    assert main(["eval", str(out)]) == 0  # evaluable as it is
    capsys.readouterr()
    recover_run(folder)  # what the next biqa train on the split does first, holding its lock
    assert is_complete(folder) and not previous_dir(folder).exists()
    assert json.loads((folder / "manifest.json").read_text())["tag"] == tag
    with staged_run(folder) as target:  # and the next retraining starts from a clean staging folder
        assert target == staging_dir(folder) and not any(target.iterdir())
        _complete_run(target, "newer")
    assert json.loads((folder / "manifest.json").read_text())["tag"] == "newer"
    assert [p.name for p in folder.parent.iterdir()] == ["split_00"]


@pytest.mark.parametrize("exchange", [True, False])
def test_staged_run_keeps_the_old_run_when_the_retraining_fails(tmp_path, monkeypatch, exchange):
    from biqa_bench import store

    if not exchange:
        monkeypatch.setattr(store, "_rename_exchange", lambda a, b: False)
    folder = tmp_path / "split_00"
    _complete_run(folder, "old")
    before = _snapshot(folder)
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with staged_run(folder) as target:
                (target / "predictions.csv").write_text("half")
                raise error
        assert _snapshot(folder) == before and not staging_dir(folder).exists()
    with pytest.raises(Exception, match="not completed; the previous run is kept"):
        with staged_run(folder) as target:
            (target / "predictions.csv").write_text("no manifest")
    assert _snapshot(folder) == before
    with staged_run(folder) as target:
        _complete_run(target, "new")
    assert json.loads((folder / "manifest.json").read_text())["tag"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split_00"]


def test_two_rename_swap_interrupted_in_process_puts_the_old_run_back(tmp_path, monkeypatch):
    from biqa_bench import store

    monkeypatch.setattr(store, "_rename_exchange", lambda a, b: False)
    folder = tmp_path / "split_00"
    _complete_run(folder, "old")
    new = tmp_path / ".new"
    _complete_run(new, "new")
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(store.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        swap_in(new, folder)
    monkeypatch.setattr(store.os, "rename", real_rename)
    assert json.loads((folder / "manifest.json").read_text())["tag"] == "old"


def test_eval_and_report_say_how_many_splits_of_the_split_file_have_runs(tiny_dataset, tmp_path, capsys):
    import shutil

    from biqa_bench.report.build import build_report

    out = tmp_path / "res"
    assert main(["train", "-m", "test-brightness", "-d", "tiny", "-n", "4", "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert "test-brightness on tiny: 4 of 4 splits\n" in capsys.readouterr().out
    shutil.rmtree(out / "tiny" / "test-brightness" / "split_02")
    assert main(["eval", str(out)]) == 0
    assert "test-brightness on tiny: 3 of 4 splits; split 2 missing" in capsys.readouterr().out
    shutil.rmtree(out / "tiny" / "test-brightness" / "split_00")
    assert main(["eval", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays JSON
    assert "2 of 4 splits; splits 0, 2 missing" in captured.err
    result = build_report(out, tmp_path / "report")
    assert result.splits == ["test-brightness on tiny: 2 of 4 splits; splits 0, 2 missing"]
    assert "test-brightness on tiny: 2 of 4 splits; splits 0, 2 missing" in result.markdown.read_text()


def test_runs_made_before_split_indices_were_recorded_read_the_split_file(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["train", "-m", "test-brightness", "-d", "tiny", "-n", "3", "-o", str(out), "-q", "--only", "0,1"]) == 0
    for manifest_path in out.rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        del manifest["split_indices"]
        manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert "test-brightness on tiny: 2 of 3 splits; split 2 missing" in capsys.readouterr().out
    for split_file in (out / "splits").iterdir():
        split_file.unlink()
    assert main(["eval", str(out)]) == 0
    assert "test-brightness on tiny: 2 splits (split file unknown)" in capsys.readouterr().out
