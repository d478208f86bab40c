"""The linear family computes what scikit-learn / scipy compute: TF-IDF of n-gram keys,
one log loss, balanced class weights; and packages stay arrays (safetensors, no pickle)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.metrics import log_loss
from sklearn.utils.class_weight import compute_class_weight

from launchml.models.linear_family import (
    LINEAR_FILE,
    LinearModel,
    _tfidf,
    validation_loss,
)
from launchml.tasks import balanced_class_weights, create_task
from launchml.tasks.multilabel import label_log_loss


def _token_ids(n: int, length: int = 12, vocab: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.5, size=(n, length)), vocab - 1).astype(np.int64) + 1
    lengths = rng.integers(0, length + 1, size=n)  # some rows all padding
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids


def _states(vocab: int = 40) -> dict:
    return {"review": {"type": "text", "vocab_size": vocab + 2, "pad_id": 0},
            "shop": {"type": "category", "categories": ["north", "south", "east"]}}


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"review": _token_ids(n, seed=seed), "shop": rng.integers(0, 5, size=n),
            "stars": rng.normal(size=n)}


def test_tfidf_is_scikit_learns_transformer():
    counts = sparse.random(60, 25, density=0.2, format="csr", random_state=0)
    counts.data = np.ceil(counts.data * 4)
    counts = sparse.diags((np.arange(60) != 3).astype(float)) @ counts  # row 3 empty
    counts.eliminate_zeros()
    ref = TfidfTransformer(sublinear_tf=True).fit(counts)
    got = _tfidf(counts.tocsr(), ref.idf_)
    np.testing.assert_allclose(got.toarray(), ref.transform(counts).toarray(), atol=1e-12)
    assert got.getnnz(axis=1)[3] == 0


def test_text_features_match_count_vectorizer_and_tfidf_transformer():
    arrays, states = _arrays(300), _states()
    model = LinearModel(create_task("binary", ["a", "b"]), states)
    model._fit_features(arrays)
    x = model._features(arrays)
    keys, idf = model.vocab_["review"]
    # the same pipeline from scikit-learn: count the n-gram keys, keep those in >= 2 rows
    rows, found = model._keys("review", arrays["review"])
    docs = [found[rows == i].tolist() for i in range(300)]
    vec = CountVectorizer(analyzer=lambda d: d, min_df=2)
    counts = vec.fit_transform(docs)
    ref = TfidfTransformer(sublinear_tf=True).fit(counts)
    assert sorted(vec.vocabulary_) == keys.tolist()
    np.testing.assert_allclose(idf, ref.idf_)
    text = x[:, -len(keys):].toarray()
    np.testing.assert_allclose(text, ref.transform(counts).toarray(), atol=1e-12)
    # one-hot of the category codes (5 = 3 categories + unseen + missing), codes clipped
    shop = x[:, 1:6].toarray()
    assert shop.sum(axis=1).tolist() == [1.0] * 300
    assert (shop.argmax(axis=1) == np.clip(arrays["shop"], 0, 4)).all()


def test_unseen_ngrams_are_dropped_and_all_padding_rows_are_zero():
    arrays = _arrays(200)
    model = LinearModel(create_task("binary", ["a", "b"]), _states())
    model._fit_features(arrays)
    new = {k: v[:3].copy() for k, v in arrays.items()}
    new["review"][0] = 0  # nothing but padding
    new["review"][1, :4] = [39, 38, 39, 38]  # a rare bigram, maybe never seen
    x = model._features(new)
    keys, _ = model.vocab_["review"]
    text = x[:, -len(keys):].toarray()
    assert not text[0].any()
    np.testing.assert_allclose(np.linalg.norm(text[1:], axis=1), 1.0)


def test_saved_as_arrays_and_reloaded_to_the_same_predictions(tmp_path):
    arrays, states = _arrays(300), _states()
    y = (arrays["stars"] + (arrays["shop"] == 1) > 0).astype(np.int64)
    task = create_task("binary", ["no", "yes"])
    model = LinearModel(task, states).fit(arrays, y, valid=(_arrays(80, seed=1),
                                                            (np.arange(80) % 2)))
    spec = model.save(tmp_path)
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / LINEAR_FILE))
    assert {"coef", "intercept", "mean", "std", "keys:review", "idf:review"} <= set(tensors)
    assert [p.name for p in tmp_path.iterdir()] == [LINEAR_FILE]  # no pickle beside it
    loaded = LinearModel.load(tmp_path, spec, task, states)
    test = _arrays(50, seed=2)
    np.testing.assert_allclose(loaded.predict_raw(test), model.predict_raw(test))


def test_one_log_loss_per_task():
    rng = np.random.default_rng(0)
    multi = create_task("multiclass", ["a", "b", "c"])
    raw, y = rng.normal(size=(200, 3)) * 3, rng.integers(0, 3, 200)
    assert validation_loss(multi, y, raw) == pytest.approx(
        log_loss(y, multi.probabilities(raw), labels=[0, 1, 2]), rel=1e-9)
    assert validation_loss(multi, y, raw) == pytest.approx(multi.metrics(y, raw)["log_loss"])
    binary = create_task("binary", ["no", "yes"])
    raw1, y1 = rng.normal(size=(200, 1)) * 3, rng.integers(0, 2, 200)
    assert validation_loss(binary, y1, raw1) == pytest.approx(
        log_loss(y1, binary.probabilities(raw1)[:, 1]), rel=1e-9)
    labels = create_task("multilabel", ["x", "y", "z"])
    z, ym = rng.normal(size=(200, 3)) * 3, (rng.random((200, 3)) < 0.4).astype(np.float32)
    per_label = np.mean([log_loss(ym[:, k], labels.probabilities(z)[:, k]) for k in range(3)])
    assert validation_loss(labels, ym, z) == pytest.approx(per_label, rel=1e-9)
    assert labels.metrics(ym, z)["log_loss"] == validation_loss(labels, ym, z)
    # from the logits, exactly: no clipping of a confident mistake
    assert label_log_loss(np.array([[0.0, 1.0]]), np.array([[40.0, -40.0]])) == \
        pytest.approx(40.0)


def test_balanced_class_weights_are_scikit_learns():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    np.testing.assert_allclose(balanced_class_weights(y, 3),
                               compute_class_weight("balanced", classes=np.arange(3), y=y))
    # an absent class gets 1; the others are balanced over the classes present, as
    # LogisticRegression(class_weight='balanced') weights them
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w, [4 / 6, 4 / 2, 1.0])
