"""Hand-crafted features regressed onto quality with a support vector regressor: the fit shared
by BRISQUE (RBF kernel) and the codebook methods CORNIA and HOSA (linear kernel).

Features are standardised (scikit-learn ``StandardScaler``; the reference codes scale to [-1, 1]
with libsvm's ``svm-scale``, an equivalent affine choice). ``C`` (and ``gamma`` for the RBF
kernel) are chosen on the validation items by SROCC (ties: lower RMSE); when there are fewer than
``min_val_items`` validation items, by seeded k-fold cross-validation on the training items. The
test items are never seen. The final regressor is refitted on train + validation items unless
``refit_with_val=False``. Non-finite feature values (a degenerate image) take the training
medians.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from biqa_bench.errors import MethodError
from biqa_bench.evaluation.metrics import rmse, srocc
from biqa_bench.methods import Context, Method


def selection_score(truth: np.ndarray, prediction: np.ndarray) -> tuple[float, float]:
    """Higher is better: (SROCC, -RMSE); an undefined SROCC ranks last."""
    rho = srocc(truth, prediction)
    return (rho if np.isfinite(rho) else -np.inf, -rmse(truth, prediction))


@dataclass(eq=False)
class FeatureSVR(Method):
    """Base (a dataclass: its fields are the SVR's hyper-parameters; subclasses add theirs and
    may change the defaults): subclasses set ``kernel`` (an ``'rbf'`` one declares ``gamma_grid``)
    and define ``features(items, ctx) -> (n, d) array``; ``prepare(train_items, ctx)`` may learn
    an unsupervised front end (a codebook) from the training items first."""

    kernel = "rbf"
    c_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    epsilon: float = 0.1
    refit_with_val: bool = True
    min_val_items: int = 10
    cv_folds: int = 5
    n_jobs: int = 2

    def __post_init__(self) -> None:
        self.c_grid = tuple(self.c_grid)

    def features(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, train_items: pd.DataFrame, ctx: Context) -> None:
        return None

    def _grid(self) -> list[tuple[float, float]]:
        gammas = self.gamma_grid if self.kernel == "rbf" else ("scale",)
        return list(product(self.c_grid, gammas))

    def _model(self, c: float, gamma):
        return make_pipeline(StandardScaler(), SVR(kernel=self.kernel, C=c, gamma=gamma, epsilon=self.epsilon))

    def _impute(self, features: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(features)
        if bad.any():
            features = features.copy()
            features[bad] = np.take(self.fill_values_, np.nonzero(bad)[1])
        return features

    def _select(self, x_train, y_train, x_val, y_val, seed: int):
        """Grid search; returns (C, gamma, selection SROCC)."""
        grid = self._grid()
        use_val = len(y_val) >= self.min_val_items
        folds = None
        if not use_val:
            n_splits = min(self.cv_folds, len(y_train))
            if n_splits < 2:
                return grid[0][0], grid[0][1], float("nan")
            folds = list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x_train))
        best, best_key = None, None
        for c, gamma in grid:
            if use_val:
                prediction = self._model(c, gamma).fit(x_train, y_train).predict(x_val)
                key = selection_score(y_val, prediction)
            else:
                prediction = np.empty(len(y_train))
                for train_index, held_index in folds:
                    model = self._model(c, gamma).fit(x_train[train_index], y_train[train_index])
                    prediction[held_index] = model.predict(x_train[held_index])
                key = selection_score(y_train, prediction)
            if best_key is None or key > best_key:
                best, best_key = (c, gamma), key
        return best[0], best[1], float(best_key[0])

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context):
        if len(train_items) < 2:
            raise MethodError(f"{self.name}: needs at least 2 training items, got {len(train_items)}")
        self.prepare(train_items, ctx)
        x_train = self.features(train_items, ctx)
        y_train = train_items["quality"].to_numpy(dtype=float)
        x_val = self.features(val_items, ctx) if len(val_items) else np.empty((0, x_train.shape[1]))
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
        ctx.log.info("%s: C=%g gamma=%s (selection SROCC %.3f)", self.name, self.C_, self.gamma_, self.selection_srocc_)
        return self

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise MethodError(f"{self.name}: not fitted; call fit or load a trained model first")
        if len(items) == 0:
            return np.empty(0)
        return self.model_.predict(self._impute(self.features(items, ctx))).astype(float)
