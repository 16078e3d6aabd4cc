"""The classical baselines on the command line: `biqa methods info` names each paper and its
parameters; `biqa demo --methods` checks the names before any work."""

from __future__ import annotations

import json

import pytest

from biqa_bench.cli import main


@pytest.mark.parametrize("name,paper,param", [("niqe", "Mittal", "pristine"), ("ilniqe", "Zhang", "n_components"),
                                              ("cornia", "Ye", "codebook_size"), ("hosa", "Xu", "nearest"),
                                              ("brisque", "Mittal", "gamma_grid")])
def test_methods_info_lists_paper_and_parameters(name, paper, param, capsys):
    assert main(["methods", "info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert paper in info["reference"] and param in info["params"]


def test_demo_refuses_an_unknown_method_before_any_work(tmp_path, capsys):
    assert main(["demo", "--methods", "brisque,niqee", "--out", str(tmp_path / "demo")]) != 0
    output = " ".join(capsys.readouterr().err.split())
    assert "unknown method 'niqee'" in output and "'niqe'" in output
    assert not (tmp_path / "demo").exists()
