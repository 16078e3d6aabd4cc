"""docs/adding-a-method.md: both adapters on the page, copied into a folder named by
$BIQA_METHODS_PATH, are discovered, listed and trained by the CLI in a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "adding-a-method.md"

SCRIPT = """
import json, sys
from biqa_bench.cli import main
out = sys.argv[1]
codes = [
    main(["methods", "info", "tiny_cnn", "--json"]),
    main(["train", "--method", "tiny_features", "--dataset", "tiny", "--repeats", "2", "--out", out, "-q"]),
    main(["train", "--method", "tiny_cnn", "--dataset", "tiny", "--repeats", "1", "--recipe", "quick",
          "-p", "width=8", "--out", out, "-q"]),
]
print("CODES", json.dumps(codes))
"""


def guide_files() -> dict[str, str]:
    """The guide's Python blocks that start with a '# name.py' line, by file name."""
    blocks = re.findall(r"```python\n# (\w+\.py)\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return {name: body for name, body in blocks}


def test_the_guide_holds_a_feature_and_a_deep_adapter():
    files = guide_files()
    assert set(files) == {"tiny_features.py", "tiny_cnn.py"}
    assert "(Method)" in files["tiny_features.py"] and "(DeepMethod)" in files["tiny_cnn.py"]


def test_the_guides_adapters_register_from_biqa_methods_path_and_train(tiny_dataset, tmp_path):
    folder = tmp_path / "my-methods"
    folder.mkdir()
    for name, body in guide_files().items():
        (folder / name).write_text(body)
    out = tmp_path / "results"
    env = {**os.environ, "BIQA_METHODS_PATH": str(folder), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.split("CODES", 1)[1]) == [0, 0, 0], done.stderr[-2000:]

    info, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])
    assert info["params"]["lr"] is None and info["params"]["width"] == 16 and info["params"]["recipe"] == "paper"
    assert info["recipes"]["quick"]["lr"] == 1e-3

    items = tiny_dataset.items.set_index("item_id")
    features = sorted((out / "tiny" / "tiny_features").glob("split_*/predictions.csv"))
    assert len(features) == 2
    for path in features:
        frame = pd.read_csv(path, dtype={"item_id": str})
        assert len(frame) == 8 and set(frame["item_id"]) <= set(items.index)
        # the images' brightness defines their score: the brightness feature ranks them well
        assert stats.spearmanr(frame["quality"], frame["prediction"]).statistic > 0.8

    (run,) = sorted((out / "tiny" / "tiny_cnn").glob("split_*"))
    frame = pd.read_csv(run / "predictions.csv", dtype={"item_id": str})
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(frame) == 8 and np.isfinite(frame["prediction"]).all()
    assert manifest["method"] == "tiny_cnn" and manifest["resolved_params"]["width"] == 8
    assert manifest["resolved_params"]["recipe"] == "quick"
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["settings"]["lr"] == 1e-3 and saved["settings"]["max_steps"] == 2
