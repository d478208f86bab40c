"""launchml.Classifier / Regressor follow the scikit-learn estimator contract."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_wine
from sklearn.model_selection import cross_val_score

import launchml


def test_classifier_in_cross_val_score_with_integer_labels():
    X, y = load_wine(return_X_y=True)
    scores = cross_val_score(launchml.Classifier(model="lightgbm", seed=0), X, y, cv=3)
    assert scores.mean() > 0.85
    clf = launchml.Classifier(seed=1).fit(X, y)
    assert clf.classes_.tolist() == [0, 1, 2] and clf.predict(X[:3]).dtype.kind == "i"
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)
    assert clf.score(X, y) > 0.9


def test_params_and_clone():
    clf = launchml.Classifier(validation_split=0.3, seed=3)
    assert clf.get_params() == {"model": "auto", "time_limit": None, "validation_split": 0.3,
                                "column_types": None, "seed": 3, "verbose": 0}
    assert clone(clf).get_params() == clf.get_params()


def test_regressor_on_a_dataframe():
    frame = load_diabetes(as_frame=True).frame
    X, y = frame.drop(columns=["target"]), frame["target"]
    reg = launchml.Regressor(seed=0).fit(X.iloc[:350], y.iloc[:350])
    assert reg.score(X.iloc[350:], y.iloc[350:]) > 0.2
    assert reg.predict(X.iloc[:2]).shape == (2,)


def test_regressor_with_few_integer_values_is_still_a_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.round(X[:, 0] * 2).clip(-5, 5)  # 11 whole numbers
    reg = launchml.Regressor(seed=0).fit(X, y)
    assert reg.predict(X[:3]).dtype.kind == "f" and reg.score(X, y) > 0.5
    clf = launchml.Classifier(seed=0).fit(X, (X[:, 1] > 0).astype(float))
    assert set(clf.predict(X[:10]).tolist()) <= {0.0, 1.0}
