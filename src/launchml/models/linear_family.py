"""The linear family for tables: logistic regression (classification) or ridge
(regression) over standardized numbers, one-hot categories, standardized feature
blocks (a molecule's RDKit fingerprints and descriptors, data/chem.py) and TF-IDF
of text, molecule and protein columns.

Text columns whose prepared arrays carry the raw strings (``<col>:raw``) get what wins
on real text: scikit-learn's ``TfidfVectorizer`` word 1-2-grams plus character 2-5-grams
(``char_wb``) of the raw strings, e-mail headers, URLs and numbers included (sublinear
tf, kept when in at least two training rows, at most ``WORDS`` / ``CHARS`` of each).
Otherwise the n-grams are built from the prepared ids: unigrams + bigrams of tokens
(packages saved before the raw strings were kept), 1- to 3-grams of characters for
molecules and proteins. The regularization strength is picked on the validation split
(a wider grid for text), within the family's time limit. The model is saved as arrays
in ``model.linear.safetensors`` and, for raw text, the n-gram vocabularies in
``model.linear.vocab.json`` (never a pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from launchml.errors import PackageError
from launchml.runs import read_json, write_json
from launchml.tasks import Task

LINEAR_FILE = "model.linear.safetensors"
VOCAB_FILE = "model.linear.vocab.json"
WORDS, CHARS = 100_000, 150_000  # most frequent word / character n-grams kept per column
# the two vectorizers of a raw text column (the same settings at fit and at serving)
TEXT_VECTORIZERS = {"word": {"analyzer": "word", "ngram_range": (1, 2)},
                    "char": {"analyzer": "char_wb", "ngram_range": (2, 5)}}
DENSE_CELLS = 20_000_000  # rows x features below which a mostly dense matrix goes dense
C_GRID_TEXT = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # many sparse, normalized features
NGRAMS = {"text": 2, "molecule": 3, "protein": 3}  # sequence type -> longest n-gram
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0)


def _ngram_keys(ids: np.ndarray, n_max: int, pad: int, base: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(row, int64 key) of every 1..n_max-gram of non-pad ids, row by row."""
    ids = np.asarray(ids, dtype=np.int64)
    valid = ids != pad
    keys, ok = [], []
    for n in range(1, n_max + 1):
        if ids.shape[1] < n:
            break
        k = np.zeros((len(ids), ids.shape[1] - n + 1), dtype=np.int64)
        v = np.ones_like(k, dtype=bool)
        for j in range(n):
            part = ids[:, j:ids.shape[1] - n + 1 + j]
            k = k * base + part + 1
            v &= valid[:, j:ids.shape[1] - n + 1 + j]
        keys.append(k + n * base ** n_max * base)  # separate key space per n
        ok.append(v)
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    k_all, v_all = np.concatenate(keys, axis=1), np.concatenate(ok, axis=1)
    rows, cols = np.nonzero(v_all)
    return rows, k_all[rows, cols]


def _counts(rows: np.ndarray, keys: np.ndarray, n_rows: int,
            vocab: np.ndarray) -> sparse.csr_matrix:
    """n_rows x len(vocab): how often each vocabulary key (sorted) occurs in each row; keys
    outside the vocabulary are dropped. What CountVectorizer(analyzer=<a row's keys>)
    counts, without its Python loop over rows and tokens: on a 5,000-row synthetic text
    table (up to 64 Zipf tokens a row, 11,860 n-grams in two rows or more) CountVectorizer
    took 100-130 ms, this 36-56 ms (three runs, 2 shared cores); the text featurizer now
    fits and transforms in 100-125 ms, the per-row loop it replaces in 195-250 ms."""
    pos = np.searchsorted(vocab, keys)
    hit = pos < len(vocab)
    hit[hit] = vocab[pos[hit]] == keys[hit]
    cells, tf = np.unique(rows[hit] * len(vocab) + pos[hit], return_counts=True)
    row, col = np.divmod(cells, max(len(vocab), 1))
    return sparse.csr_matrix((tf.astype(np.float64), col,
                              np.searchsorted(row, np.arange(n_rows + 1))),
                             shape=(n_rows, len(vocab)))


def _tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """``TfidfTransformer(sublinear_tf=True).transform(counts)`` given its fitted ``idf_``
    (``_fit_features`` fits it): (1 + log tf) * idf, then each row scaled to unit L2 norm.

    Written out with numpy rather than calling the transformer at predict time: a package
    serving a linear model imports no scikit-learn, and importing
    sklearn.feature_extraction.text adds 1.4 s to its cold start; the transformer also takes
    0.2 ms per call where this takes 0.02 ms, on a one-row prediction that takes 0.6 ms in
    all (and 0.9 ms vs 1.2 ms on 5,000 rows). tests/models/test_linear.py checks both give
    the same matrix.
    """
    x = counts.astype(np.float64, copy=True)
    lengths = np.diff(x.indptr)
    x.data = (1.0 + np.log(x.data)) * idf[x.indices]
    norms = np.sqrt(np.bincount(np.repeat(np.arange(x.shape[0]), lengths),
                                weights=x.data ** 2, minlength=x.shape[0]))
    x.data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
    return x


class LinearModel:
    """Constructor stores; ``fit`` learns ``coef_``/``intercept_`` and the featurizer."""

    name = "linear"

    def __init__(self, task: Task, states: dict[str, dict[str, Any]], *, seed: int = 0,
                 class_weight: str = "none") -> None:
        self.task = task
        self.states = states
        self.seed = seed
        self.class_weight = class_weight
        self.strength: float | None = None  # C or alpha once chosen

    # -- features --------------------------------------------------------------
    def _fit_features(self, arrays: dict[str, np.ndarray]) -> None:
        self.dense_ = [k for k, a in arrays.items() if a.ndim == 1 and a.dtype.kind == "f"]
        # 2-D float parts of a column ('<col>:ecfp', '<col>:descriptors'): standardized
        self.blocks_ = {}
        for k, a in arrays.items():
            if a.ndim == 2 and a.dtype.kind == "f" and ":" in k:
                x = np.asarray(a, dtype=np.float64)
                std = x.std(0)
                self.blocks_[k] = (x.mean(0), np.where(std > 0, std, 1.0))
        self.text_ = self._fit_text(arrays)
        self.cats_ = [(c, len(s["categories"]) + 2) for c, s in self.states.items()
                      if s["type"] == "category"]
        x = np.column_stack([arrays[k] for k in self.dense_]) if self.dense_ else None
        self.mean_ = x.mean(0) if x is not None else np.zeros(0)
        std = x.std(0) if x is not None else np.zeros(0)
        self.std_ = np.where(std > 0, std, 1.0)
        self.vocab_: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # col: (keys, idf)
        n = len(next(iter(arrays.values())))
        for col, s in self.states.items():
            if s["type"] not in NGRAMS or col in self.text_:
                continue
            rows, keys = self._keys(col, arrays[col])
            vocab = np.unique(keys)
            counts = _counts(rows, keys, n, vocab)
            df = np.bincount(counts.indices, minlength=len(vocab))  # rows holding each key
            keep = df >= 2 if (df >= 2).sum() >= 10 else np.ones(len(vocab), dtype=bool)
            idf = (_tfidf_transformer().fit(counts[:, keep]).idf_ if keep.any()
                   else np.zeros(0))  # smooth idf: log((1 + n) / (1 + df)) + 1
            self.vocab_[col] = (vocab[keep], idf.astype(np.float64))

    def _fit_text(self, arrays: dict[str, np.ndarray]
                  ) -> dict[str, dict[str, tuple[list[str], np.ndarray]]]:
        """{column: {"word"|"char": (terms, idf)}} for text columns with raw strings."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        out = {}
        self._fitted_rows: dict[str, tuple[int, list[sparse.csr_matrix]]] = {}
        for col, s in self.states.items():
            if s["type"] != "text" or f"{col}:raw" not in arrays:
                continue
            docs = _docs(arrays[f"{col}:raw"])
            out[col], blocks = {}, []
            for part, opts in TEXT_VECTORIZERS.items():
                vec = TfidfVectorizer(**opts, sublinear_tf=True, min_df=2 if len(docs) > 20
                                      else 1, max_features=WORDS if part == "word" else CHARS,
                                      dtype=np.float64)
                try:
                    blocks.append(vec.fit_transform(docs).tocsr())
                except ValueError:  # no term in two rows (e.g. empty strings)
                    continue
                terms = vec.get_feature_names_out().tolist()
                out[col][part] = (terms, vec.idf_.astype(np.float64))
            # the training rows' matrices, kept for the _features call that follows: the
            # n-gram analysis of raw text is most of the family's time
            self._fitted_rows[col] = (id(arrays[f"{col}:raw"]), blocks)
        return out

    def _text_features(self, col: str, raw: np.ndarray) -> list[sparse.csr_matrix]:
        from sklearn.feature_extraction.text import CountVectorizer

        kept = getattr(self, "_fitted_rows", {}).pop(col, None)
        if kept is not None and kept[0] == id(raw):
            return kept[1]

        docs = _docs(raw)
        blocks = []
        for part, (terms, idf) in self.text_[col].items():
            counts = CountVectorizer(**TEXT_VECTORIZERS[part], vocabulary=terms,
                                     dtype=np.float64).transform(docs)
            blocks.append(_tfidf(counts.tocsr(), idf))
        return blocks

    def _keys(self, col: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.states[col]
        return _ngram_keys(ids, NGRAMS[s["type"]], s.get("pad_id", 0),
                           int(s["vocab_size"]) + 1)

    def _features(self, arrays: dict[str, np.ndarray]) -> sparse.csr_matrix:
        n = len(next(iter(arrays.values())))
        blocks = []
        if self.dense_:
            x = np.column_stack([np.asarray(arrays[k], dtype=np.float64) for k in self.dense_])
            blocks.append(sparse.csr_matrix((x - self.mean_) / self.std_))
        for k, (mean, std) in self.blocks_.items():
            blocks.append(sparse.csr_matrix((np.asarray(arrays[k], dtype=np.float64) - mean)
                                            / std))
        for col, card in self.cats_:
            # one-hot of the prepared category codes. Not OneHotEncoder: the codes are already
            # 0..card-1 (preprocessing maps values, unseen and missing ones), so all that is
            # left is this one sparse matrix; OneHotEncoder(categories=[range(card)]) gives
            # the same matrix in 0.30 ms instead of 0.06 ms per 5,000 rows and 0.22 ms
            # instead of 0.04 ms per one-row prediction (0.6 ms in all), and would make
            # serving import scikit-learn (sklearn.preprocessing: 0.9 s on a cold start).
            codes = np.clip(np.asarray(arrays[col], dtype=np.int64), 0, card - 1)
            blocks.append(sparse.csr_matrix((np.ones(n), (np.arange(n), codes)),
                                            shape=(n, card)))
        for col, (keys, idf) in self.vocab_.items():
            rows, found = self._keys(col, arrays[col])
            blocks.append(_tfidf(_counts(rows, found, n, keys), idf))
        for col in self.text_:
            blocks += self._text_features(col, arrays[f"{col}:raw"])
        return sparse.hstack(blocks, format="csr")

    def _design(self, arrays: dict[str, np.ndarray]) -> Any:
        """The features as the solver takes them: with dense blocks (fingerprints,
        descriptors) and small enough, a dense array, for which the solvers are many times
        faster (Ridge's Cholesky instead of sparse CG); else the sparse matrix."""
        x = self._features(arrays)
        cells = x.shape[0] * x.shape[1]
        if self.blocks_ and cells <= DENSE_CELLS and x.nnz > 0.05 * cells:
            return x.toarray()
        return x

    # -- fit / predict ---------------------------------------------------------
    def _estimator(self, strength: float) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.task.name == "regression":
            return Ridge(alpha=strength)
        weight = "balanced" if self.class_weight == "balanced" else None
        # two classes of sparse text n-grams: liblinear's coordinate descent is 2-3x faster
        # than lbfgs there (5 s vs 11-15 s for 2,400 reviews, 66k n-grams, same accuracy)
        solver = "liblinear" if self.text_ and self.task.name in ("binary", "multilabel") \
            else "lbfgs"
        return LogisticRegression(C=strength, max_iter=3000, class_weight=weight,
                                  solver=solver)

    def _fit_once(self, x: sparse.csr_matrix, y: np.ndarray, strength: float) -> None:
        if self.task.name == "multilabel":  # one model per label
            models = [self._estimator(strength).fit(x, y[:, j]) for j in range(y.shape[1])]
            self.coef_ = np.vstack([m.coef_.reshape(1, -1) for m in models])
            self.intercept_ = np.array([float(np.ravel(m.intercept_)[0]) for m in models])
            return
        m = self._estimator(strength).fit(x, y)
        self.coef_ = np.atleast_2d(m.coef_).astype(np.float64)
        self.intercept_ = np.atleast_1d(m.intercept_).astype(np.float64)

    def fit(self, arrays: dict[str, np.ndarray], y: np.ndarray,
            valid: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
            deadline: float | None = None) -> LinearModel:
        """``deadline`` (time.perf_counter()): no further strength is tried after it."""
        import time

        t0 = time.perf_counter()
        self._fit_features(arrays)
        x = self._design(arrays)
        features_s, fits = time.perf_counter() - t0, []
        grid = ALPHA_GRID if self.task.name == "regression" else \
            C_GRID_TEXT if self.text_ else C_GRID
        if self.strength is None and valid is not None and len(valid[1]):
            xv, scores, found = self._design(valid[0]), {}, {}
            # from the middle outwards: the likeliest strengths first when time is short
            middle = len(grid) // 2
            for s in sorted(grid, key=lambda g: abs(grid.index(g) - middle)):
                if scores and deadline is not None and time.perf_counter() > deadline:
                    break
                t1 = time.perf_counter()
                self._fit_once(x, y, s)
                fits.append(time.perf_counter() - t1)
                scores[s] = _loss(self.task, valid[1], self._raw(xv))
                found[s] = (self.coef_, self.intercept_)
            self.strength = min(scores, key=scores.get)
            self.scores_ = scores
            # the chosen strength's model was fit on these rows already: kept, not fit again
            self.coef_, self.intercept_ = found[self.strength]
        else:
            t1 = time.perf_counter()
            self._fit_once(x, y, self.strength or 1.0)
            fits.append(time.perf_counter() - t1)
        self.strength = self.strength or 1.0
        # what fitting again with the chosen strength costs: the features and one fit
        self.fit_cost_ = features_s + float(np.mean(fits))
        return self

    def refit(self, arrays: dict[str, np.ndarray], y: np.ndarray) -> LinearModel:
        """Fit again on more rows with the strength chosen on validation."""
        return self.fit(arrays, y)

    def _raw(self, x: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.coef_.T) + self.intercept_

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return self._raw(self._design(arrays))

    # -- package ---------------------------------------------------------------
    def save(self, folder: str | Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        from launchml.runs import atomic_path

        tensors = {"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_,
                   "std": self.std_}
        for col, (keys, idf) in self.vocab_.items():
            tensors[f"keys:{col}"], tensors[f"idf:{col}"] = keys, idf
        for k, (mean, std) in self.blocks_.items():
            tensors[f"block_mean:{k}"], tensors[f"block_std:{k}"] = mean, std
        vocab = {}
        for col, parts in self.text_.items():
            for part, (terms, idf) in parts.items():
                tensors[f"text_idf:{col}:{part}"] = idf
                vocab.setdefault(col, {})[part] = terms
        path = Path(folder) / LINEAR_FILE
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        files = {"linear": LINEAR_FILE}
        if vocab:
            write_json(Path(folder) / VOCAB_FILE, vocab)
            files["linear_vocab"] = VOCAB_FILE
        return {"files": files, "dense": self.dense_,
                "categories": self.cats_, "sequences": list(self.vocab_),
                "blocks": list(self.blocks_), "texts": list(self.text_),
                "strength": self.strength}

    @classmethod
    def load(cls, folder: str | Path, spec: dict[str, Any], task: Task,
             states: dict[str, dict[str, Any]]) -> LinearModel:
        from safetensors.numpy import load_file

        path = Path(folder) / spec["files"]["linear"]
        if not path.exists():
            raise PackageError(f"'{path}' is missing: the package's linear model is gone.")
        t = load_file(str(path))
        vocab = read_json(Path(folder) / spec["files"]["linear_vocab"]) \
            if spec.get("texts") else {}
        _check_shapes(t, spec, vocab, task, spec["files"]["linear"])
        model = cls(task, states)
        model.coef_, model.intercept_ = t["coef"], t["intercept"]
        model.mean_, model.std_ = t["mean"], t["std"]
        model.dense_ = spec["dense"]
        model.cats_ = [tuple(c) for c in spec["categories"]]
        model.vocab_ = {c: (t[f"keys:{c}"], t[f"idf:{c}"]) for c in spec["sequences"]}
        model.blocks_ = {k: (t[f"block_mean:{k}"], t[f"block_std:{k}"])
                         for k in spec.get("blocks", [])}
        model.text_ = {c: {part: (terms, t[f"text_idf:{c}:{part}"])
                           for part, terms in vocab[c].items()} for c in spec.get("texts", [])}
        model.strength = spec["strength"]
        return model


def _check_shapes(t: dict[str, np.ndarray], spec: dict[str, Any], vocab: dict[str, Any],
                  task: Task, file: str) -> None:
    """The tensors fit the spec (columns, categories, vocabularies) and the task: checked
    at load, so a damaged file is a PackageError naming the tensor, not a shape error at
    the first prediction."""
    from launchml.models.shapes import check_tensors

    dense = len(spec["dense"])
    expected: dict[str, tuple[int | None, ...]] = {"mean": (dense,), "std": (dense,)}
    for c in spec["sequences"]:
        expected[f"keys:{c}"] = expected[f"idf:{c}"] = (None,)
    for k in spec.get("blocks", []):
        expected[f"block_mean:{k}"] = expected[f"block_std:{k}"] = (None,)
    for c in spec.get("texts", []):
        for part, terms in (vocab.get(c) or {}).items():
            expected[f"text_idf:{c}:{part}"] = (len(terms),)
    check_tensors(t, expected, file, extra=False)  # coef and intercept: below
    for c in spec["sequences"]:  # a vocabulary's keys and their idf, one each
        check_tensors(t, {f"idf:{c}": t[f"keys:{c}"].shape}, file, extra=False)
    for k in spec.get("blocks", []):
        check_tensors(t, {f"block_std:{k}": t[f"block_mean:{k}"].shape}, file, extra=False)
    width = dense + sum(int(card) for _, card in spec["categories"]) \
        + sum(len(t[f"keys:{c}"]) for c in spec["sequences"]) \
        + sum(len(t[f"block_mean:{k}"]) for k in spec.get("blocks", [])) \
        + sum(len(terms) for c in spec.get("texts", []) for terms in (vocab.get(c) or {}).values())
    outputs = task.num_outputs
    check_tensors(t, {**expected, "coef": (outputs, width), "intercept": (outputs,)}, file)


def _loss(task: Task, y: np.ndarray, raw: np.ndarray) -> float:
    """Lower is better: the task's log loss (as its metrics report it) for classification,
    MSE for regression."""
    if task.name == "regression":
        return float(np.mean((raw.reshape(-1) - y) ** 2))
    if task.name == "multilabel":
        from launchml.tasks.multilabel import label_log_loss

        return label_log_loss(y, raw)
    from launchml.tasks.classification import class_log_loss

    return class_log_loss(y, task.probabilities(raw), len(task.labels))


def _tfidf_transformer() -> Any:
    from sklearn.feature_extraction.text import TfidfTransformer

    return TfidfTransformer(sublinear_tf=True)  # norm l2, smooth idf: what _tfidf applies


validation_loss = _loss  # the public name (model selection in train.select ranks by it)


def _docs(raw: np.ndarray) -> list[str]:
    """The raw strings of a '<col>:raw' array (UTF-8 bytes)."""
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in np.asarray(raw).tolist()]
