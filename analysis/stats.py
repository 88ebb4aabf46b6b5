"""Small statistics shared by the analysis scripts: mean, sample std and a 95% t-interval.

The interval is mean ± t(0.975, n-1) * sd / sqrt(n) (Student t; quantiles tabulated for up to 30
degrees of freedom, the normal 1.96 beyond). One value has no spread: sd and the half-width
are NaN.
"""
import math

import numpy as np

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
       2.045, 2.042]


def t95(n):
    """The two-sided 95% Student t quantile for a mean of n >= 2 values (n - 1 degrees of freedom)."""
    return T95[n - 2] if n - 1 <= len(T95) else 1.96


def interval(values):
    """(mean, sample std, half-width of the 95% t-interval) of the finite values (NaN if none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    sd = float(v.std(ddof=1))
    return float(v.mean()), sd, t95(len(v)) * sd / math.sqrt(len(v))


def format_interval(mean, sd, half, digits=3):
    """'m ± sd [lo, hi]', or just 'm' for a single value."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"


def format_difference(values, digits=3):
    """A paired difference over seeds: '+m [lo, hi]' with ' *' when the 95% interval excludes 0;
    '+m' for one value; 'n/a' without finite values."""
    mean, _, half = interval(values)
    if math.isnan(mean):
        return "n/a"
    if math.isnan(half):
        return f"{mean:+.{digits}f}"
    star = " *" if abs(mean) > half else ""
    return f"{mean:+.{digits}f} [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]{star}"
