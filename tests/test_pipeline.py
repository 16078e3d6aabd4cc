"""Registry errors, split rules, resumable runs and predictions import."""

import json

import numpy as np
import pandas as pd
import pytest

from biqa_bench.datasets.registry import load_dataset, parse_spec
from biqa_bench.errors import DatasetError, MethodError, RunError, SplitError
from biqa_bench.importer import import_predictions
from biqa_bench.methods import create_method
from _run_helpers import train_runs
from biqa_bench.splits import load_splits, make_splits
from biqa_bench.store import find_runs, load_predictions


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DatasetError, match="Did you mean 'koniq'"):
        load_dataset("konik")


def test_unknown_method_suggests_a_name():
    with pytest.raises(MethodError, match="Did you mean 'test-brightness'"):
        create_method("test-brightnes")


def test_dataset_without_root_says_how_to_set_it():
    with pytest.raises(DatasetError, match="biqa datasets root koniq DIR"):
        load_dataset("koniq")


def test_unknown_option_is_named(tiny_dataset):
    with pytest.raises(DatasetError, match="unknown option"):
        load_dataset("tiny:colour=red")


def test_spec_parsing():
    assert parse_spec("koniq:scale=mos, x=1") == ("koniq", {"scale": "mos", "x": "1"})
    with pytest.raises(DatasetError):
        parse_spec("koniq:scale")


def test_quality_is_linear_map_of_nominal_range(tiny_dataset):
    items = tiny_dataset.items
    np.testing.assert_allclose(items["quality"], (items["score"] - 1) / 4 * 100)


def test_splits_keep_contents_apart_and_reproduce(tiny_dataset):
    a = make_splits(tiny_dataset, repeats=4, seed=3)
    b = make_splits(tiny_dataset, repeats=4, seed=3)
    c = make_splits(tiny_dataset, repeats=4, seed=4)
    assert a.hash == b.hash and a.hash != c.hash
    content = tiny_dataset.items.set_index("item_id")["content_id"]
    for split in a.splits:
        parts = [set(content[split.train]), set(content[split.val]), set(content[split.test])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(split.train) + len(split.val) + len(split.test) == len(tiny_dataset.items)
        assert len(split.test) == 8  # 20 % of 20 contents, 2 images each
    assert [s.test for s in a.splits] != [s.test for s in a.splits[::-1]]


def test_split_file_round_trip_and_stale_detection(tiny_dataset, tmp_path):
    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    path = split_set.save(tmp_path / "s.json")
    assert load_splits(path, tiny_dataset).hash == split_set.hash
    data = json.loads(path.read_text())
    data["fingerprint"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(SplitError, match="no longer matches"):
        load_splits(path, tiny_dataset)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SplitError, match="not a valid split file"):
        load_splits(tmp_path / "bad.json")


def test_runs_write_predictions_and_resume_after_interrupt(tiny_dataset, tmp_path):
    split_set = make_splits(tiny_dataset, repeats=3, seed=0)
    out = tmp_path / "results"
    with pytest.raises(KeyboardInterrupt):
        train_runs("test-brightness", {"fail_on_split": 1}, tiny_dataset, split_set, out)
    assert len(find_runs(out)) == 1  # split 0 finished, split 1 was in flight
    outcomes = train_runs("test-brightness", {"fail_on_split": 1}, tiny_dataset, split_set, out, only_splits=[0])
    assert [o.status for o in outcomes] == ["skipped"]
    with pytest.raises(RunError, match="other parameters"):
        train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    outcomes = train_runs("test-brightness", {}, tiny_dataset, split_set, out, force=True)
    assert [o.status for o in outcomes] == ["done"] * 3
    again = train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    assert [o.status for o in again] == ["skipped"] * 3
    predictions = load_predictions(out)
    assert len(predictions) == sum(len(s.test) for s in split_set.splits)
    manifest = json.loads((out / "tiny" / "test-brightness" / "split_02" / "manifest.json").read_text())
    assert manifest["split_hash"] == split_set.hash and manifest["dataset_fingerprint"] == tiny_dataset.fingerprint
    assert "method_seed" in manifest and manifest["seed"] == 0
    # asked-for params identify the run; every param, defaults included, is recorded beside them
    assert manifest["params"] == {} and manifest["resolved_params"] == {"fail_on_split": None}
    # the whole dataset's quality distribution, for the report's histogram: every item once
    counts = manifest["quality_histogram"]
    quality = tiny_dataset.items["quality"].to_numpy()
    assert len(counts) == 100 and sum(counts) == len(quality)
    assert sum(counts[:25]) == int((quality < 25).sum()) and counts == np.histogram(np.clip(quality, 0, 100), bins=np.arange(0, 101))[0].tolist()
    assert predictions.groupby("split")["prediction"].apply(lambda p: np.corrcoef(p, predictions.loc[p.index, "quality"])[0, 1]).min() > 0.8


def _write(tmp_path, frame, name="p.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_import_predictions_and_its_errors(tiny_dataset, tmp_path):
    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    out = tmp_path / "results"
    items = tiny_dataset.items
    good = pd.concat(
        [pd.DataFrame({"item_id": s.test, "prediction": np.arange(len(s.test), dtype=float), "split": s.index}) for s in split_set.splits]
    )
    folders = import_predictions("ext", tiny_dataset, [_write(tmp_path, good)], split_set, out).folders
    assert len(folders) == 2 and len(load_predictions(out)) == len(good)

    missing = good.iloc[1:]
    with pytest.raises(RunError, match="no prediction for 1 test items"):
        import_predictions("ext", tiny_dataset, [_write(tmp_path, missing)], split_set, out)
    nan = good.copy()
    nan.iloc[0, 1] = np.nan
    with pytest.raises(RunError, match="NaN"):
        import_predictions("ext", tiny_dataset, [_write(tmp_path, nan)], split_set, out)
    duplicate = pd.concat([good, good.iloc[:1]])
    with pytest.raises(RunError, match="duplicate item ids"):
        import_predictions("ext", tiny_dataset, [_write(tmp_path, duplicate)], split_set, out)
    wrong = good.assign(item_id="other_" + good["item_id"])
    with pytest.raises(RunError, match="not in dataset 'tiny'"):
        import_predictions("ext", tiny_dataset, [_write(tmp_path, wrong)], split_set, out)
    no_column = good.rename(columns={"prediction": "pred"})
    with pytest.raises(RunError, match="no 'prediction' column"):
        import_predictions("ext", tiny_dataset, [_write(tmp_path, no_column)], split_set, out)
    assert set(items["item_id"]) >= set(good["item_id"])


def test_resume_keeps_checkpoints_of_the_split_in_flight(tiny_dataset, tmp_path):
    from biqa_bench.store import staged_run

    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "epoch_001.pt").write_text("x")
    (folder / "predictions.csv").write_text("partial")
    with staged_run(folder, keep=("checkpoints",)) as target:  # incomplete: trained in place
        assert target == folder
        assert (folder / "checkpoints" / "epoch_001.pt").exists() and not (folder / "predictions.csv").exists()
    with staged_run(folder) as target:
        assert folder.is_dir() and not any(folder.iterdir())


def test_parallel_jobs_give_the_same_runs_as_serial(tiny_dataset, tmp_path):
    # brisque lives in methods/, so worker processes find it (test-only methods would not be)
    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    params = {"c_grid": [10.0], "gamma_grid": [0.1], "n_jobs": 1}
    serial = train_runs("brisque", params, tiny_dataset, split_set, tmp_path / "serial")
    parallel = train_runs("brisque", params, tiny_dataset, split_set, tmp_path / "parallel", jobs=2)
    assert [o.status for o in parallel] == ["done", "done"] and [o.split for o in parallel] == [0, 1]
    a = load_predictions(tmp_path / "serial").sort_values(["split", "item_id"]).reset_index(drop=True)
    b = load_predictions(tmp_path / "parallel").sort_values(["split", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(serial) == 2
    with pytest.raises(RunError, match="--jobs"):
        train_runs("brisque", params, tiny_dataset, split_set, tmp_path / "x", jobs=0)


# ---------------------------------------------------------------------------- atomic_folder


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_atomic_folder_renames_into_place_on_success(tmp_path):
    from biqa_bench.store import atomic_folder

    final = tmp_path / "sub" / "built"
    with atomic_folder(final) as tmp:
        assert tmp.parent == final.parent and tmp.is_dir() and tmp.name.endswith(".tmp")
        assert not final.exists()  # nothing at the final name while building
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"
    assert _leftovers(final.parent) == []

    named = tmp_path / ".partial-cache-1-abc"
    with atomic_folder(tmp_path / "cache", temp=named) as tmp:
        assert tmp == named and tmp.is_dir()
    assert (tmp_path / "cache").is_dir() and not named.exists()


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_folder_removes_the_temporary_folder_on_failure(tmp_path, error):
    from biqa_bench.store import atomic_folder

    final = tmp_path / "built"
    with pytest.raises(error):
        with atomic_folder(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise error("interrupted")
    assert not final.exists() and list(tmp_path.iterdir()) == []


def test_atomic_folder_replace_swaps_a_stale_folder(tmp_path):
    from biqa_bench.store import atomic_folder

    final = tmp_path / "built"
    final.mkdir()
    (final / "old.txt").write_text("stale")
    with atomic_folder(final, replace=True) as tmp:
        (tmp / "new.txt").write_text("fresh")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []  # neither the temporary nor the stale folder is left


def test_atomic_folder_keeps_a_folder_another_process_completed_first(tmp_path):
    from biqa_bench.store import atomic_folder

    final = tmp_path / "built"
    done = lambda f: (f / "manifest.json").exists()  # noqa: E731
    with atomic_folder(final, complete=done) as tmp:
        (tmp / "manifest.json").write_text("ours")
        final.mkdir()  # the other process finishes while we build
        (final / "manifest.json").write_text("theirs")
    assert (final / "manifest.json").read_text() == "theirs"
    assert _leftovers(tmp_path) == []

    # a folder there that is not complete: the rename error is raised, ours is removed
    other = tmp_path / "other"
    with pytest.raises(OSError):
        with atomic_folder(other, complete=done) as tmp:
            (tmp / "manifest.json").write_text("ours")
            other.mkdir()
            (other / "junk.txt").write_text("half")
    assert sorted(p.name for p in other.iterdir()) == ["junk.txt"]
    assert _leftovers(tmp_path) == []


def test_atomic_folder_replace_keeps_a_folder_put_there_between_the_renames(tmp_path, monkeypatch):
    import os

    from biqa_bench import store

    final = tmp_path / "built"
    final.mkdir()
    (final / "old.txt").write_text("stale")
    real_rename = os.rename

    def racing_rename(src, dst):
        if str(src).endswith(".tmp"):  # another process puts its own build in place first
            final.mkdir()
            (final / "theirs.txt").write_text("theirs")
        real_rename(src, dst)

    monkeypatch.setattr(store.os, "rename", racing_rename)
    with store.atomic_folder(final, replace=True) as tmp:
        (tmp / "ours.txt").write_text("ours")
    assert sorted(p.name for p in final.iterdir()) == ["theirs.txt"]
    assert _leftovers(tmp_path) == []


def test_a_damaged_run_is_a_one_line_error_and_force_retrains_it(tiny_dataset, tmp_path):
    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    out = tmp_path / "results"
    train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    folder = out / "tiny" / "test-brightness"
    (folder / "split_00" / "manifest.json").write_text("{broken")
    with pytest.raises(RunError, match=r"split_00.manifest\.json: unreadable manifest .*delete the run folder"):
        train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    (folder / "split_00" / "manifest.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="not a run manifest"):
        train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    outcomes = train_runs("test-brightness", {}, tiny_dataset, split_set, out, force=True)
    assert [o.status for o in outcomes] == ["done", "done"]
    # predictions that are not text, or empty, are named too
    (folder / "split_01" / "predictions.csv").write_bytes(bytes(range(254, 256)) * 50)
    with pytest.raises(RunError, match=r"split_01.predictions\.csv: cannot read predictions"):
        load_predictions(out)
    (folder / "split_01" / "predictions.csv").write_text("")
    with pytest.raises(RunError, match="cannot read predictions"):
        load_predictions(out)


def test_a_split_another_live_process_trains_is_left_alone(tiny_dataset, tmp_path):
    import os
    import subprocess
    import sys

    from biqa_bench.store import SplitBusy, acquire_split_lock, release_split_lock

    split_set = make_splits(tiny_dataset, repeats=3, seed=0)
    out = tmp_path / "results"
    folder = out / "tiny" / "test-brightness" / "split_01"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_text("the other process's work")
    # another process holds split 1's lock, as a second `biqa train` in the middle of that split does
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from biqa_bench.store import acquire_split_lock; "
         "held = acquire_split_lock(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcomes = train_runs("test-brightness", {}, tiny_dataset, split_set, out)
        assert [o.status for o in outcomes] == ["done", "busy", "done"]
        assert "being trained by process" in outcomes[1].note and str(holder.pid) in outcomes[1].note
        assert (folder / "checkpoint.pt").read_text() == "the other process's work"  # not cleared
    finally:
        holder.kill()  # dies without releasing: the kernel drops its lock
        holder.wait()
    outcomes = train_runs("test-brightness", {}, tiny_dataset, split_set, out)
    assert [o.status for o in outcomes] == ["skipped", "done", "skipped"]
    assert not list((out / "tiny" / "test-brightness").glob(".*.lock"))
    # within one process too: a second acquire is refused until the first is released
    held = acquire_split_lock(folder)
    with pytest.raises(SplitBusy, match=str(os.getpid())):
        acquire_split_lock(folder)
    release_split_lock(held)
    release_split_lock(acquire_split_lock(folder))


def test_an_interrupted_split_releases_its_lock(tiny_dataset, tmp_path):
    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    out = tmp_path / "results"
    with pytest.raises(KeyboardInterrupt):
        train_runs("test-brightness", {"fail_on_split": 1}, tiny_dataset, split_set, out)
    assert not list((out / "tiny" / "test-brightness").glob(".*.lock"))
