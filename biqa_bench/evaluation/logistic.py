"""The 4-parameter monotonic logistic mapping of VQEG / Sheikh et al. (2006).

    f(x) = b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|))

The mapping is constrained to be non-decreasing (b1 >= b2, b4 > 0): every method's prediction
is higher-is-better, so the mapping may not flip its sign. Without the constraint a method whose
ranking is unrelated or inverted can get a decreasing logistic and a high positive PLCC, the
same mistake as reporting ``abs()`` correlations. The problem is least squares in the parameters
(a = b1 - b2 >= 0, b2, b3, b4 > 0). It is solved in standardised coordinates (x and y minus their
means over their standard deviations; the parameters are transformed back exactly) by variable
projection: for fixed (b3, b4) the model is linear in (a, b2), whose least-squares values (with
a >= 0) are closed-form, which leaves a bounded 2-parameter problem in (b3, b4) for scipy
``least_squares`` (trust-region reflective). This finds the same minimum as the direct 4-parameter
fit, several times faster (tests/test_logistic_fit.py compares both; BENCHMARKS.md). When the
projected fit ends flat (a = 0) the direct 4-parameter fit (``curve_fit``, analytic Jacobian) is
run instead, so flat cases are decided exactly as before. Starting values (documented,
deterministic): b1 = max(y), b2 = min(y), b3 = mean(x), b4 = std(x) / 4 (or 1 when x is constant);
the projected fit starts from the same b3 and b4.
A fit that fails is reported in :class:`LogisticFit` (``success=False``, ``message``) and the
mapping falls back to the best non-decreasing linear fit (slope 0, the mean of y, when the
least-squares slope is negative), so callers never crash on it and the fallback cannot flip
the sign either.

A **flat** mapping is a failed fit too: for a method that ranks the items inversely (or not at
all) the best non-decreasing logistic is a constant, and its "PLCC" is numerical noise (about
the raw correlation's sign times an arbitrary value). The fit is flagged flat when the fitted
curve spans less than :data:`FLAT_FRACTION` of the range of y over the given x; the fallback is
then the constant mean of y (PLCC undefined, RMSE that of predicting the mean).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, least_squares


#: A fitted logistic whose values over the data span less than this fraction of the range of
#: the truth is "flat": it maps every prediction to (nearly) one value.
FLAT_FRACTION = 1e-3

FLAT_MESSAGE = ("the non-decreasing logistic is flat, as for predictions ranked inversely to or unrelated "
                "with the truth, so PLCC is not defined")


def logistic4(x, b1, b2, b3, b4):
    x = np.asarray(x, dtype=float)
    z = np.clip(-(x - b3) / np.abs(b4), -500, 500)
    return b2 + (b1 - b2) / (1.0 + np.exp(z))


def _increasing(x, a, b2, b3, b4):
    """f(x) with a = b1 - b2 >= 0 and b4 > 0: the parametrisation that is fitted."""
    return logistic4(x, b2 + a, b2, b3, b4)


def _increasing_jacobian(x, a, b2, b3, b4):
    # analytic derivatives: finite differences stall when a parameter starts at 0
    x = np.asarray(x, dtype=float)
    s = 1.0 / (1.0 + np.exp(np.clip(-(x - b3) / b4, -500, 500)))
    ds = s * (1.0 - s)
    return np.stack([s, np.ones_like(s), -a * ds / b4, -a * ds * (x - b3) / b4**2], axis=1)


@dataclass(frozen=True)
class LogisticFit:
    params: tuple[float, float, float, float] | None  # (b1, b2, b3, b4); None if the fit failed
    success: bool
    message: str
    linear: tuple[float, float] = (1.0, 0.0)  # slope, intercept: the fallback mapping
    flat: bool = False  # the fitted logistic was flat (see FLAT_FRACTION); the fallback is a constant

    def fallback_note(self) -> str:
        """One clause for a record's reason: why the fit is not used and what replaces it."""
        if self.success:
            return ""
        if self.flat:
            return self.message
        return f"the logistic fit failed ({self.message}), so PLCC and RMSE use the linear fallback"

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.success and self.params is not None:
            return logistic4(x, *self.params)
        slope, intercept = self.linear
        return slope * x + intercept


def starting_values(x, y) -> tuple[float, float, float, float]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    spread = float(np.std(x))
    return float(np.max(y)), float(np.min(y)), float(np.mean(x)), spread / 4.0 if spread > 0 else 1.0


def _linear_part(s, v) -> tuple[float, float]:
    """Least-squares (a >= 0, b2) of v ~ b2 + a * s, closed form."""
    centred = s - s.mean()
    var = float(centred @ centred)
    a = max(float(centred @ v) / var, 0.0) if var > 0 else 0.0
    return a, float(v.mean()) - a * float(s.mean())


def _projected_fit(x, y, b4_floor, maxfev):
    """Variable-projection fit in standardised coordinates; (a, b2, b3, b4) in x and y's units."""
    mx, sx, my, sy = float(np.mean(x)), float(np.std(x)), float(np.mean(y)), float(np.std(y))
    sy = sy if sy > 0 else 1.0
    u, v = (x - mx) / sx, (y - my) / sy

    def sigmoid(p):
        return 1.0 / (1.0 + np.exp(np.clip(-(u - p[0]) / p[1], -500, 500)))

    def residual(p):
        s = sigmoid(p)
        a, c = _linear_part(s, v)
        return c + a * s - v

    _, _, b3, b4 = starting_values(u, v)
    floor = b4_floor / sx
    result = least_squares(residual, [b3, max(b4, 2 * floor)], bounds=([-np.inf, floor], [np.inf, np.inf]),
                           method="trf", max_nfev=maxfev)
    if not result.success:
        return None
    a, c = _linear_part(sigmoid(result.x), v)
    return np.array([sy * a, my + sy * c, mx + sx * result.x[0], sx * result.x[1]])


def _direct_fit(x, y, b4_floor, maxfev):
    """The direct 4-parameter bounded fit (trust-region reflective, analytic Jacobian)."""
    b1, b2, b3, b4 = starting_values(x, y)
    lower = [0.0, -np.inf, -np.inf, b4_floor]
    upper = [np.inf, np.inf, np.inf, np.inf]
    p0 = [max(b1 - b2, 0.0), b2, b3, max(b4, 2 * b4_floor)]
    params, _ = curve_fit(_increasing, x, y, p0=p0, jac=_increasing_jacobian, bounds=(lower, upper), max_nfev=maxfev)
    return params


def fit_logistic(x, y, maxfev: int = 20000) -> LogisticFit:
    """Fit f(x) to y. Never raises on a bad fit: see ``success`` and ``message``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be 1-d arrays of the same length")
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        linear = (float(slope), float(intercept)) if slope >= 0 else (0.0, float(np.mean(y)))
    else:
        linear = (0.0, float(np.mean(y)) if len(y) else 0.0)
    if len(x) < 5:
        return LogisticFit(None, False, f"too few points ({len(x)}) for a 4-parameter fit", linear)
    if np.ptp(x) == 0:
        return LogisticFit(None, False, "predictions are constant", linear)
    b4_floor = 1e-9 * max(float(np.ptp(x)), 1e-12)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params = _projected_fit(x, y, b4_floor, maxfev)
            if params is None or params[0] <= 0:
                params = _direct_fit(x, y, b4_floor, maxfev)
    except (RuntimeError, ValueError) as exc:
        return LogisticFit(None, False, f"logistic fit failed: {exc}", linear)
    if not np.all(np.isfinite(params)):
        return LogisticFit(None, False, "logistic fit gave non-finite parameters", linear)
    a, b2, b3, b4 = (float(p) for p in params)
    fitted = _increasing(x, a, b2, b3, b4)
    if np.ptp(fitted) < FLAT_FRACTION * np.ptp(y):
        return LogisticFit(None, False, FLAT_MESSAGE, (0.0, float(np.mean(y))), flat=True)
    return LogisticFit((b2 + a, b2, b3, b4), True, "ok", linear)
