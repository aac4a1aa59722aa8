"""Intervals and one-sided tests for a mean (paired) delta; shared by the gate and the aggregates.

Pure numpy and the standard library. Two methods, chosen from the data (``paired_test``):

- ``tango_score`` when every per-row score on both sides is 0 or 1. The oriented deltas are then
  +1 (the candidate gained the row), -1 (lost it) or 0; with ``g`` gains, ``w`` losses among ``n``
  pairs the difference of paired proportions is ``theta = (g - w) / n``. Tango's score statistic for
  ``H0: theta = d0`` (Tango 1998, Statistics in Medicine 17:891, equations 24-26) is::

      T(d0) = (g - w - n d0) / sqrt(n (2 q + d0 (1 - d0)))
      q = (sqrt(B^2 - 4 A C) - B) / (2 A),  A = 2n,  B = -g - w + (2n - g + w) d0,  C = -w d0 (1 - d0)

  where ``q`` is the maximum-likelihood probability of a loss under ``H0``. ``T`` decreases in
  ``d0``; the interval at one-sided level ``a`` is ``{d0 : |T(d0)| <= z_(1-a)}``, found by bisection.
- ``studentized_bootstrap`` otherwise: the bootstrap-t (Efron & Tibshirani 1993, ch. 12), never
  less conservative than Student's t. With sample mean ``m``, standard deviation ``s`` (n - 1) and
  ``se = s / sqrt(n)``, ``resamples`` samples of the rows are drawn with replacement (seeded, in
  chunks of at most ``CHUNK_ELEMENTS`` indices so memory stays bounded for any number of rows) and
  each gives ``t* = (m* - m) / (s* / sqrt(n))`` (``s*`` floored at ``s / sqrt(n)``, see
  ``studentized``). Each one-sided p-value is the larger of the bootstrap-t's (the share of ``t*`` at
  or beyond ``T = (m + δ) / se``) and Student's t with ``n - 1`` degrees of freedom; the interval at
  one-sided level ``a`` is the hull of ``[m - t*_(1-a) se, m - t*_(a) se]`` and
  ``m -/+ t_(n-1, 1-a) se``. Why both: for normal deltas Student's t is exact, while the
  bootstrap-t's critical value ``t*_(1-a)`` is itself estimated from the sample (and from
  ``resamples`` draws) and scatters around ``t_(n-1, 1-a)``; at the margin on normal deltas the two
  pass about equally often (bootstrap-t alone 2.56% +/- 0.08% at 50 rows, 2.58% at 100; Student's t
  alone 2.52% and 2.53% on the same 40,000 samples per cell: no excess beyond Monte Carlo error).
  For skewed deltas the bootstrap-t corrects the side on which Student's t is too liberal. A
  candidate passes only when both tests reject, so the level is at most the smaller of the two
  tests' levels, and lower where they disagree (2.34% and 2.41% on the same samples). Under strong
  skew the bootstrap-t's own excess remains on small cohorts: deltas ``-δ + s (1 - E)``, ``E``
  exponential (skewness -2, the long tail below), 40,000 samples at the margin: bootstrap-t and the
  combination 3.02% +/- 0.09% at 50 rows (2.48% at 100), Student's t alone 5.50% (4.25% at 100).
  Chosen over BCa for the gate because BCa held the one-sided level worse on the same samples and
  resamples (2.99% at 50 normal rows, 2.78% at 100; 3.76% and 2.91% skewed). These figures:
  ``python bench/gate_calibration.py --part margin --samples 40000 --shape normal`` and
  ``--shape skewed`` (about 9 min each on 2 AMD EPYC cores, ``OMP_NUM_THREADS=1``); the bench's
  other parts measure the whole gate on score tables.

``bca`` (bias-corrected and accelerated bootstrap, Efron 1987) gives the interval of a single
mean that the aggregates report: bias ``z0 = Phi^-1(share of resampled means below m, ties half)``,
acceleration ``a = sum(e^3) / (6 sum(e^2)^1.5)`` with ``e = x - m`` (the jackknife's, exact for a
mean), and the bound at level ``p`` is the ``Phi(z0 + (z0 + z_p) / (1 - a (z0 + z_p)))`` quantile
of the resampled means, as ``scipy.stats.bootstrap(method="BCa")`` computes it.

Both give one-sided p-values against a margin δ (direction: a positive delta is an improvement):
``p_noninferior`` tests ``H0: mean <= -δ`` (small when the candidate is within δ of the baseline)
and ``p_regress`` tests ``H0: mean >= -δ`` (small when it is worse by more than δ); the lower bound
at level p clears -δ exactly when ``p_noninferior <= p``. Values are sorted before resampling, so a
result depends on the multiset of deltas only: not on the order or the ids of the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

TANGO = "tango_score"
BCA = "bca_bootstrap"
STUDENTIZED = "studentized_bootstrap"
CHUNK_ELEMENTS = 1 << 21
"""Most resampled row indices held at once (16 MiB of int64, as much again for the gathered values)."""
_NORMAL = NormalDist()


def z_quantile(p: float) -> float:
    """``Phi^-1(p)``, the standard normal quantile, for p in (0, 1)."""
    return _NORMAL.inv_cdf(p)


def is_binary(*samples: np.ndarray) -> bool:
    """True when every value of every sample is exactly 0 or 1 (and there is at least one value)."""
    return all(s.size > 0 and bool(np.all((s == 0) | (s == 1))) for s in samples)


@dataclass(frozen=True)
class TangoTest:
    """Tango's score test and interval for the difference of paired proportions ``(g - w) / n``."""

    gains: int
    losses: int
    n: int
    method: str = TANGO

    @property
    def mean(self) -> float:
        """The observed difference ``(g - w) / n``, in [-1, 1]."""
        return (self.gains - self.losses) / self.n

    def statistic(self, d0: float) -> float:
        """``T(d0)`` for ``H0: theta = d0`` (d0 in (-1, 1)); decreasing in d0."""
        g, w, n = self.gains, self.losses, self.n
        numerator = g - w - n * d0
        variance = n * self.null_variance(d0)
        if variance <= 0:
            return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
        return numerator / math.sqrt(variance)

    def null_variance(self, d0: float) -> float:
        """Per-row variance of the delta under ``H0: theta = d0``: ``2 q + d0 (1 - d0)``."""
        g, w, n = self.gains, self.losses, self.n
        b = -g - w + (2 * n - g + w) * d0
        c = -w * d0 * (1 - d0)
        q = (math.sqrt(max(b * b - 8 * n * c, 0.0)) - b) / (4 * n)
        return 2 * q + d0 * (1 - d0)

    def p_values(self, margin: float) -> tuple[float, float]:
        """(p_noninferior, p_regress) against ``-margin``: ``Phi(-T(-margin))`` and ``Phi(T(-margin))``."""
        if margin >= 1:
            return (0.0, 1.0) if self.mean > -1 else (1.0, 1.0)
        t = self.statistic(-margin)
        if not math.isfinite(t):
            return float(t < 0), float(t > 0)
        return _NORMAL.cdf(-t), _NORMAL.cdf(t)

    def interval(self, tail: float) -> tuple[float, float]:
        """Bounds ``L < U`` with ``T(L) = z_(1-tail)`` and ``T(U) = -z_(1-tail)``, inside [-1, 1]."""
        z = z_quantile(1 - tail)
        low = _bisect(lambda d: self.statistic(d) - z, -1.0, self.mean)
        high = _bisect(lambda d: self.statistic(d) + z, self.mean, 1.0)
        return low, high

    @property
    def row_sd(self) -> float:
        """Sample standard deviation of the per-row deltas (n - 1 in the denominator)."""
        if self.n < 2:
            return 0.0
        second = (self.gains + self.losses) / self.n
        return math.sqrt(max(second - self.mean**2, 0.0) * self.n / (self.n - 1))

    def spread_at_margin(self, margin: float) -> float:
        """Per-row standard deviation the test assumes at ``-margin`` (sets the rows needed)."""
        return math.sqrt(max(self.null_variance(-min(margin, 1.0)), 0.0))


def _bisect(func: Callable[[float], float], low: float, high: float, steps: int = 60) -> float:
    """The root of a decreasing ``func`` in [low, high]; an end point when it keeps one sign there."""
    if func(low) <= 0:
        return low
    if func(high) >= 0:
        return high
    for _ in range(steps):
        middle = (low + high) / 2
        if func(middle) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class BcaTest:
    """BCa bootstrap of a mean: the sorted resampled means, the bias ``z0`` and acceleration ``a``."""

    n: int
    mean: float
    row_sd: float
    means: np.ndarray
    z0: float
    acceleration: float
    method: str = BCA

    def interval(self, tail: float) -> tuple[float, float]:
        """BCa bounds at one-sided level ``tail`` on each side."""
        if self.row_sd == 0:
            return self.mean, self.mean
        bounds = []
        for p in (tail, 1 - tail):
            w = self.z0 + z_quantile(p)
            adjusted = _NORMAL.cdf(self.z0 + w / (1 - self.acceleration * w))
            bounds.append(float(np.quantile(self.means, min(max(adjusted, 0.0), 1.0))))
        return bounds[0], bounds[1]


@dataclass(frozen=True)
class StudentizedTest:
    """Bootstrap-t of a mean (``t* = (mean* - mean) / (sd* / sqrt(n))``, sorted), capped by Student's t."""

    n: int
    mean: float
    row_sd: float
    t_star: np.ndarray
    method: str = STUDENTIZED

    @property
    def standard_error(self) -> float:
        """``sd / sqrt(n)`` of the sample."""
        return self.row_sd / math.sqrt(self.n)

    def p_values(self, margin: float) -> tuple[float, float]:
        """(p_noninferior, p_regress) against ``-margin``: the larger of bootstrap-t's and Student's t's.

        ``T = (mean + margin) / se``. Bootstrap-t: ``P*(t* >= T)`` and ``P*(t* <= T)``; Student's t with
        ``n - 1`` degrees of freedom: ``P(t >= T)`` and ``P(t <= T)``. A sample whose deltas are all
        equal decides by its mean; a mean exactly at ``-margin`` by neither.
        """
        if self.row_sd == 0:
            if self.mean == -margin:
                return 1.0, 1.0
            return (0.0, 1.0) if self.mean > -margin else (1.0, 0.0)
        statistic = (self.mean + margin) / self.standard_error
        size = self.t_star.size
        at_or_above = size - np.searchsorted(self.t_star, statistic, side="left")
        at_or_below = np.searchsorted(self.t_star, statistic, side="right")
        df = self.n - 1
        return (
            max(float(at_or_above / size), student_t_sf(statistic, df)),
            max(float(at_or_below / size), student_t_sf(-statistic, df)),
        )

    def interval(self, tail: float) -> tuple[float, float]:
        """The hull of the bootstrap-t bounds ``[mean - t*_(1-tail) se, mean - t*_(tail) se]`` (quantiles
        of t* without interpolation) and Student's ``mean -/+ t_(n-1, 1-tail) se``."""
        if self.row_sd == 0:
            return self.mean, self.mean
        se = self.standard_error
        high_t, low_t = np.quantile(self.t_star, [1 - tail, tail], method="inverted_cdf")
        student = student_t_quantile(1 - tail, self.n - 1)
        low = min(self.mean - float(high_t) * se, self.mean - student * se)
        high = max(self.mean - float(low_t) * se, self.mean + student * se)
        return low, high

    def spread_at_margin(self, margin: float) -> float:
        """Per-row standard deviation of the deltas (the same at every margin)."""
        return self.row_sd


def regularized_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, for a, b > 0 and x in [0, 1].

    ``I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * K(x)`` with ``K`` the continued fraction of Numerical
    Recipes (section 6.4, evaluated by the modified Lentz method), used where it converges fast
    (``x < (a + 1) / (a + b + 2)``); elsewhere through ``I_x(a, b) = 1 - I_(1-x)(b, a)``.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_beta(1.0 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * _beta_fraction(x, a, b) / a


def _beta_fraction(x: float, a: float, b: float, tiny: float = 1e-300, eps: float = 1e-15) -> float:
    """The continued fraction ``K(x) = 1 / (1 + d_1 / (1 + d_2 / (1 + ...)))`` of ``regularized_beta``.

    ``d_2m = m (b - m) x / ((a + 2m - 1)(a + 2m))`` and
    ``d_2m+1 = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))``; stops when a step changes it by < eps.
    """
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 100_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return fraction


def student_t_sf(t: float, df: int) -> float:
    """``P(T >= t)`` for Student's t with ``df`` degrees of freedom: ``I_(df/(df+t^2))(df/2, 1/2) / 2``
    for t >= 0, one minus that for t < 0."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    half_tail = regularized_beta(df / (df + t * t), df / 2, 0.5) / 2
    return half_tail if t >= 0 else 1.0 - half_tail


def student_t_quantile(p: float, df: int) -> float:
    """``t_(df, p)``: the t with ``P(T <= t) = p`` (p in (0, 1)), by bisection on ``student_t_sf``."""
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    high = max(1.0, 2 * z_quantile(p))
    while student_t_sf(high, df) > 1 - p:
        high *= 2
    return _bisect(lambda t: student_t_sf(t, df) - (1 - p), 0.0, high, steps=80)


PairedTest = TangoTest | StudentizedTest


def paired_test(deltas: np.ndarray, *, binary: bool, resamples: int, seed: int) -> PairedTest:
    """Tango's test when ``binary`` (deltas in {-1, 0, 1}), the studentized bootstrap (capped by
    Student's t) otherwise."""
    values = np.asarray(deltas, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot test the mean of no values")
    if binary:
        return TangoTest(int(np.sum(values == 1)), int(np.sum(values == -1)), int(values.size))
    return studentized(values, resamples=resamples, seed=seed)


def studentized(values: np.ndarray, *, resamples: int, seed: int) -> StudentizedTest:
    """The bootstrap-t of the mean of ``values`` (sorted first: order-free), seeded.

    Each resample's standard deviation is floored at ``s / sqrt(n)``: a resample without spread
    (a few rows carry every change and it drew none of them) gets a large finite ``t*`` instead of an
    infinite one, which keeps such samples uncertain without making every bound infinite. Typical
    resamples have ``s* ~ s`` and are unaffected.
    """
    data = np.sort(np.asarray(values, dtype=np.float64))
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
    means, sds = resample_moments(data, resamples, seed)
    floor = sd / math.sqrt(data.size)
    t_star = (means - mean) / (np.maximum(sds, floor) / math.sqrt(data.size)) if sd > 0 else means * 0
    return StudentizedTest(int(data.size), mean, sd, np.sort(t_star))


def bca(values: np.ndarray, *, resamples: int, seed: int) -> BcaTest:
    """The BCa bootstrap of the mean of ``values`` (sorted first: order-free), seeded."""
    data = np.sort(np.asarray(values, dtype=np.float64))
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
    means = np.sort(resample_moments(data, resamples, seed)[0])
    below = (np.searchsorted(means, mean, "left") + np.searchsorted(means, mean, "right")) / 2
    share = min(max(below / resamples, 0.5 / resamples), 1 - 0.5 / resamples)
    errors = data - mean
    spread = float(np.sum(errors**2))
    acceleration = float(np.sum(errors**3)) / (6 * spread**1.5) if spread > 0 else 0.0
    return BcaTest(data.size, mean, sd, means, z_quantile(share), acceleration)


def chunk_sizes(rows: int, resamples: int, chunk_elements: int = CHUNK_ELEMENTS) -> Iterator[int]:
    """Resamples per chunk: as many as keep ``chunk x rows <= chunk_elements`` (at least one)."""
    per_chunk = max(1, chunk_elements // max(rows, 1))
    for start in range(0, resamples, per_chunk):
        yield min(per_chunk, resamples - start)


def resample_moments(
    values: np.ndarray, resamples: int, seed: int, chunk_elements: int = CHUNK_ELEMENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Means and sample standard deviations of ``resamples`` samples of the rows.

    Rows are drawn with replacement by ``default_rng(seed)``, chunk by chunk (``chunk_sizes``), so
    at most ``chunk_elements`` indices and values are held at once; the chunking does not change
    the result. Standard deviations use n - 1 (0 for a single row).
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    sds = np.zeros(resamples, dtype=np.float64)
    done = 0
    for size in chunk_sizes(values.size, resamples, chunk_elements):
        drawn = values[rng.integers(0, values.size, size=(size, values.size))]
        means[done : done + size] = drawn.mean(axis=1)
        if values.size > 1:
            sds[done : done + size] = drawn.std(axis=1, ddof=1)
        done += size
    return means, sds


def rows_needed(test: PairedTest, margin: float, level: float) -> int | None:
    """Rows at which a sample like this one (same mean delta, same per-row spread) is decided.

    ``n = ceil((z * s / (mean + margin))^2)`` with ``z = Phi^-1(1 - level)`` and ``s`` the per-row
    spread (``spread_at_margin``: the sample standard deviation for the bootstrap, the standard
    deviation Tango's test assumes at ``-margin`` for binary scores, for which the formula is exact):
    the one-sided bound at ``level`` then clears ``-margin`` (non-inferiority when the mean is above
    ``-margin``, a regression when below). None when the mean sits exactly on ``-margin``.
    """
    gap = test.mean + margin
    if gap == 0:
        return None
    spread = test.spread_at_margin(margin)
    return max(1, math.ceil((z_quantile(1 - level) * spread / gap) ** 2))
