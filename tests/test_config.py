"""Where dataset roots and registrations live: BIQA_CONFIG, a project-local file, BIQA_ROOT_<NAME>;
`biqa datasets remove` and `biqa datasets root NAME --unset`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from biqa_bench import config
from biqa_bench.cli import main

from conftest import make_image_folder


def biqa(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), captured.err


def test_the_suite_uses_its_own_config(isolated_env):
    assert config.config_path() == isolated_env / "config.json"
    assert config.config_source()[1] == "BIQA_CONFIG"
    user = Path.home() / ".config" / "biqa" / "config.json"
    assert config.config_path() != user
    assert not any(v.startswith("BIQA_ROOT_") for v in os.environ)


def test_root_variable_names():
    assert config.root_variable("koniq") == "BIQA_ROOT_KONIQ"
    assert config.root_variable("cid2013") == "BIQA_ROOT_CID2013"
    assert config.root_variable("my-db.v2") == "BIQA_ROOT_MY_DB_V2"


def test_project_config_is_found_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("BIQA_CONFIG")
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "biqa" / "config.json"
    assert config.config_source() == (user, "user")  # none yet: the user's file (here the test's)
    (project / config.PROJECT_CONFIG).write_text("{}\n")
    assert config.config_source() == (project / config.PROJECT_CONFIG, "project")
    # BIQA_CONFIG still wins over a project file
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "explicit.json"))
    assert config.config_source() == (tmp_path / "explicit.json", "BIQA_CONFIG")


def test_two_projects_never_see_each_others_roots(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BIQA_CONFIG")
    data_a, data_b = tmp_path / "koniq-a", tmp_path / "koniq-b"
    data_a.mkdir()
    data_b.mkdir()
    for name, data in (("one", data_a), ("two", data_b)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / config.PROJECT_CONFIG).write_text("{}\n")
        monkeypatch.chdir(folder)
        code, out, err = biqa(capsys, "datasets", "root", "koniq", data)
        assert code == 0, err
        assert str(folder / config.PROJECT_CONFIG) in out
    for name, data in (("one", data_a), ("two", data_b)):
        monkeypatch.chdir(tmp_path / name)
        assert config.dataset_root("koniq") == data.resolve()
        saved = json.loads((tmp_path / name / config.PROJECT_CONFIG).read_text())
        assert saved["roots"] == {"koniq": str(data.resolve())}
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "biqa" / "config.json"
    assert not user.exists()  # nothing written to the user's file


def test_environment_overrides_one_root_without_writing(tmp_path, monkeypatch, capsys):
    saved, override = tmp_path / "saved", tmp_path / "override"
    saved.mkdir()
    override.mkdir()
    config.set_dataset_root("koniq", saved)
    before = config.config_path().read_text()
    monkeypatch.setenv("BIQA_ROOT_KONIQ", str(override))
    assert config.dataset_root("koniq") == override
    assert config.dataset_root_source("koniq") == (override, "BIQA_ROOT_KONIQ")
    assert config.dataset_root("clive") is None  # other datasets untouched
    code, out, _ = biqa(capsys, "datasets", "root", "koniq")
    assert code == 0 and f"koniq: {override} (from BIQA_ROOT_KONIQ)" in out
    assert config.config_path().read_text() == before
    monkeypatch.delenv("BIQA_ROOT_KONIQ")
    assert config.dataset_root("koniq") == saved.resolve()


def test_environment_root_reaches_load_dataset(tmp_path, monkeypatch):
    from biqa_bench.datasets.registry import load_dataset

    monkeypatch.setenv("BIQA_ROOT_KONIQ", str(tmp_path / "missing"))
    with pytest.raises(Exception, match="missing"):
        load_dataset("koniq")  # the override is the folder it looks in


def test_root_unset_forgets_and_says_so(tmp_path, capsys):
    folder = tmp_path / "koniq"
    folder.mkdir()
    assert biqa(capsys, "datasets", "root", "koniq", folder)[0] == 0
    assert config.dataset_root("koniq") == folder.resolve()
    code, out, _ = biqa(capsys, "datasets", "root", "koniq", "--unset")
    assert code == 0 and "root forgotten" in out
    assert config.dataset_root("koniq") is None
    assert json.loads(config.config_path().read_text())["roots"] == {}
    code, out, _ = biqa(capsys, "datasets", "root", "koniq", "--unset")
    assert code == 0 and "nothing to forget" in out
    code, _, err = biqa(capsys, "datasets", "root", "koniq", folder, "--unset")
    assert code == 2 and "takes no folder" in err and len(err.strip().splitlines()) == 1


def test_datasets_remove_unregisters_and_keeps_the_files(tmp_path, capsys):
    images = tmp_path / "images"
    labels = make_image_folder(images, n=12)
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    assert biqa(capsys, "datasets", "add", "mydb", "--csv", csv, "--root", images, "--score-range", 1, 5)[0] == 0
    assert biqa(capsys, "datasets", "root", "mydb", images)[0] == 0
    code, out, err = biqa(capsys, "datasets", "remove", "mydb")
    assert code == 0, err
    assert "removed dataset 'mydb'" in out and str(csv.resolve()) in out
    saved = json.loads(config.config_path().read_text())
    assert saved["datasets"] == {} and saved["roots"] == {}
    assert csv.is_file() and len(list(images.iterdir())) == 12
    code, _, err = biqa(capsys, "datasets", "info", "mydb")
    assert code == 2 and "unknown dataset 'mydb'" in err
    # the name is free again
    assert biqa(capsys, "datasets", "add", "mydb", "--csv", csv, "--root", images, "--score-range", 1, 5)[0] == 0


def test_datasets_remove_refuses_builtins_and_unknown_names(capsys):
    code, _, err = biqa(capsys, "datasets", "remove", "koniq")
    assert code == 2 and "built-in" in err and "--unset" in err and len(err.strip().splitlines()) == 1
    code, _, err = biqa(capsys, "datasets", "remove", "koniqq")
    assert code == 2 and "koniq" in err and len(err.strip().splitlines()) == 1
