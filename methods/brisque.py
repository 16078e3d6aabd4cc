"""BRISQUE (Mittal, Moorthy and Bovik, IEEE TIP 2012): 36 natural-scene-statistics features
(:mod:`biqa_bench.features.brisque`) regressed onto quality with an RBF support vector
regressor trained per split.

Features are computed once per image and cached across splits and runs
(:class:`biqa_bench.features.cache.FeatureCache` under ``ctx.cache_dir``). Features are
standardised (scikit-learn ``StandardScaler``; the reference code scales to [-1, 1] with
libsvm's ``svm-scale``, an equivalent affine choice). ``C`` and ``gamma`` are chosen on the
validation items by SROCC (ties: lower RMSE); when there are fewer than ``min_val_items``
validation items, by seeded k-fold cross-validation on the training items. The test items are
never seen. The final regressor is refitted on train + validation items unless
``refit_with_val=False``.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from biqa_bench.errors import MethodError
from biqa_bench.evaluation.metrics import rmse, srocc
from biqa_bench.features.brisque import FEATURE_VERSION, MIN_SIDE, N_FEATURES, brisque_features
from biqa_bench.features.cache import FeatureCache, image_source_tag
from biqa_bench.methods import Context, Method, register_method


def brisque_feature_matrix(items: pd.DataFrame, ctx: Context, n_jobs: int = 1) -> np.ndarray:
    """The (n_items, 36) BRISQUE features of ``items``, from the cache where possible."""
    cache = FeatureCache(ctx.cache_dir, "brisque", FEATURE_VERSION, image_source_tag(ctx.images))
    paths = [str(p) for p in items["path"]]

    def report(done: int, total: int) -> None:
        ctx.progress("BRISQUE features", done, total)

    features = cache.compute(paths, brisque_features, ctx.read_image, n_jobs=n_jobs, progress=report)
    if len(paths) and features.shape[1] != N_FEATURES:
        raise MethodError(f"{cache.folder}: cached BRISQUE features have {features.shape[1]} columns, "
                          f"expected {N_FEATURES}; delete that folder")
    return features.reshape(len(paths), N_FEATURES)


def _score(truth: np.ndarray, prediction: np.ndarray) -> tuple[float, float]:
    """Higher is better: (SROCC, -RMSE); an undefined SROCC ranks last."""
    rho = srocc(truth, prediction)
    return (rho if np.isfinite(rho) else -np.inf, -rmse(truth, prediction))


@register_method("brisque")
class Brisque(Method):
    """BRISQUE features + RBF SVR (C, gamma chosen on the validation items)."""

    def __init__(
        self,
        c_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0),
        gamma_grid: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1),
        epsilon: float = 0.1,
        refit_with_val: bool = True,
        min_val_items: int = 10,
        cv_folds: int = 5,
        n_jobs: int = 2,
    ):
        self.c_grid = tuple(c_grid)
        self.gamma_grid = tuple(gamma_grid)
        self.epsilon = epsilon
        self.refit_with_val = refit_with_val
        self.min_val_items = min_val_items
        self.cv_folds = cv_folds
        self.n_jobs = n_jobs

    def min_image_side(self) -> int:
        return MIN_SIDE

    def _model(self, c: float, gamma: float):
        return make_pipeline(StandardScaler(), SVR(kernel="rbf", C=c, gamma=gamma, epsilon=self.epsilon))

    def _impute(self, features: np.ndarray) -> np.ndarray:
        # A degenerate image (e.g. flat) has undefined shape estimates: use the training medians.
        bad = ~np.isfinite(features)
        if bad.any():
            features = features.copy()
            features[bad] = np.take(self.fill_values_, np.nonzero(bad)[1])
        return features

    def _select(self, x_train, y_train, x_val, y_val, seed: int) -> tuple[float, float, float]:
        """Grid search; returns (C, gamma, selection SROCC)."""
        use_val = len(y_val) >= self.min_val_items
        folds = None
        if not use_val:
            n_splits = min(self.cv_folds, len(y_train))
            if n_splits < 2:
                return self.c_grid[0], self.gamma_grid[0], float("nan")
            folds = list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x_train))
        best, best_key = None, None
        for c, gamma in product(self.c_grid, self.gamma_grid):
            if use_val:
                prediction = self._model(c, gamma).fit(x_train, y_train).predict(x_val)
                key = _score(y_val, prediction)
            else:
                prediction = np.empty(len(y_train))
                for train_index, held_index in folds:
                    model = self._model(c, gamma).fit(x_train[train_index], y_train[train_index])
                    prediction[held_index] = model.predict(x_train[held_index])
                key = _score(y_train, prediction)
            if best_key is None or key > best_key:
                best, best_key = (c, gamma), key
        return best[0], best[1], float(best_key[0])

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "Brisque":
        if len(train_items) < 2:
            raise MethodError(f"brisque: needs at least 2 training items, got {len(train_items)}")
        x_train = brisque_feature_matrix(train_items, ctx, self.n_jobs)
        y_train = train_items["quality"].to_numpy(dtype=float)
        if len(val_items):
            x_val = brisque_feature_matrix(val_items, ctx, self.n_jobs)
        else:
            x_val = np.empty((0, N_FEATURES))
        y_val = val_items["quality"].to_numpy(dtype=float) if len(val_items) else np.empty(0)

        medians = np.nanmedian(np.where(np.isfinite(x_train), x_train, np.nan), axis=0)
        self.fill_values_ = np.nan_to_num(medians, nan=0.0)
        x_train, x_val = self._impute(x_train), self._impute(x_val)

        self.C_, self.gamma_, self.selection_srocc_ = self._select(x_train, y_train, x_val, y_val, ctx.seed)
        if self.refit_with_val and len(y_val):
            x_final, y_final = np.vstack([x_train, x_val]), np.concatenate([y_train, y_val])
        else:
            x_final, y_final = x_train, y_train
        self.model_ = self._model(self.C_, self.gamma_).fit(x_final, y_final)
        ctx.log.info("brisque: C=%g gamma=%g (selection SROCC %.3f)", self.C_, self.gamma_, self.selection_srocc_)
        return self

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise MethodError("brisque: not fitted; call fit or load a trained model first")
        if len(items) == 0:
            return np.empty(0)
        features = self._impute(brisque_feature_matrix(items, ctx, self.n_jobs))
        return self.model_.predict(features).astype(float)
