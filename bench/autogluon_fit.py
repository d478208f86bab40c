"""AutoGluon for bench/quality.py, run by bench/.venv-autogluon's Python (its own pins).

    python autogluon_fit.py '{"folder": ..., "label": ..., "time_limit": 120, "seed": 0,
                              "problem_type": null}'

Reads <folder>/train.parquet and test.parquet, fits ``TabularPredictor(...).fit(
time_limit=T, presets="medium_quality")`` and writes <folder>/out.json with the test
predictions and the best model's name.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from autogluon.tabular import TabularPredictor


def main() -> None:
    spec = json.loads(sys.argv[1])
    folder = Path(spec["folder"])
    train = pd.read_parquet(folder / "train.parquet")
    test = pd.read_parquet(folder / "test.parquet")
    np.random.seed(spec["seed"])
    predictor = TabularPredictor(label=spec["label"], problem_type=spec["problem_type"],
                                 path=str(folder / "ag"), verbosity=0)
    predictor.fit(train, time_limit=spec["time_limit"], presets="medium_quality")
    pred = predictor.predict(test)
    (folder / "out.json").write_text(json.dumps({"predictions": pred.tolist(),
                                                 "best_model": predictor.model_best}))


if __name__ == "__main__":
    main()
