"""Cases, mpmath values and checks for high_precision.csv.

Each case is one row: a model, a quantity, a customer history (frequency,
recency, t) and horizon where they apply, and four parameters. Rows of
unconditional_expected have no history, and rows of p_alive and log_likelihood
have no horizon. Those fields are written empty.
"""

import csv
import math
import warnings

import mpmath
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter

from closed_forms import (
    BGNBD_PARAM_NAMES,
    PARETO_NBD_PARAM_NAMES,
    bgnbd_conditional_expected_mp,
    bgnbd_expected_by_quadrature,
    bgnbd_unconditional_expected_mp,
    pareto_nbd_a0_by_quadrature,
    pareto_nbd_conditional_expected_mp,
    pareto_nbd_log_likelihood_mp,
    pareto_nbd_p_alive_mp,
    to_mp,
)
from fixture_values import format_float, format_optional, relative_difference

# Significant digits written to high_precision.csv. Each value is computed at
# WORKING_DPS and again at CHECK_DPS decimal digits, and the two must agree to
# more than OUTPUT_DIGITS digits. A_0 is a difference of two close terms for
# large x and loses a few digits, hence the margin.
OUTPUT_DIGITS = 50
WORKING_DPS = 80
CHECK_DPS = 100
QUADRATURE_DPS = 60
QUADRATURE_AGREEMENT = 1e-40
LIFETIMES_AGREEMENT = 1e-10


BGNBD_HIGH_PRECISION_PARAMS = [(0.243, 4.414, 0.3, 0.4), (0.243, 4.414, 0.1, 0.5)]
# (frequency, recency, T) histories for the conditional expectation.
BGNBD_HISTORIES = [(0, 0.0, 10.0), (0, 0.0, 38.86), (1, 5.0, 38.86), (2, 30.43, 38.86)]
BGNBD_HORIZONS = (39.0, 52.0)
BGNBD_UNCONDITIONAL_TIMES = (1.0, 32.0)

# lifetimes returns NaN for the frequencies from 200 up in this list.
PARETO_NBD_LARGE_S_PARAMS = (0.553, 10.578, 64.0, 7721.0)
PARETO_NBD_LARGE_S_FREQUENCIES = (2, 10, 50, 100, 200, 300, 400, 600, 1000)
# alpha >= beta selects the other 2F1 branch of A_0, which lifetimes evaluates
# without trouble for these inputs.
PARETO_NBD_ALPHA_ABOVE_BETA_PARAMS = (0.553, 10.578, 0.606, 5.0)
PARETO_NBD_ALPHA_ABOVE_BETA_FREQUENCIES = (2, 10, 50)
PARETO_NBD_RECENCY = 30.0
PARETO_NBD_AGE = 39.0
PARETO_NBD_HORIZON = 52.0


def build_high_precision_cases():
    """Return the input rows of high_precision.csv, without values."""
    cases = []
    for params in BGNBD_HIGH_PRECISION_PARAMS:
        for frequency, recency, age in BGNBD_HISTORIES:
            for horizon in BGNBD_HORIZONS:
                cases.append(
                    {
                        "model": "bgnbd",
                        "quantity": "expected",
                        "frequency": frequency,
                        "recency": recency,
                        "t": age,
                        "horizon": horizon,
                        "params": params,
                    }
                )
        for horizon in BGNBD_UNCONDITIONAL_TIMES:
            cases.append(
                {
                    "model": "bgnbd",
                    "quantity": "unconditional_expected",
                    "frequency": None,
                    "recency": None,
                    "t": None,
                    "horizon": horizon,
                    "params": params,
                }
            )
    for params, frequencies in [
        (PARETO_NBD_LARGE_S_PARAMS, PARETO_NBD_LARGE_S_FREQUENCIES),
        (PARETO_NBD_ALPHA_ABOVE_BETA_PARAMS, PARETO_NBD_ALPHA_ABOVE_BETA_FREQUENCIES),
    ]:
        for frequency in frequencies:
            for quantity, horizon in [
                ("p_alive", None),
                ("expected", PARETO_NBD_HORIZON),
                ("log_likelihood", None),
            ]:
                cases.append(
                    {
                        "model": "pareto_nbd",
                        "quantity": quantity,
                        "frequency": frequency,
                        "recency": PARETO_NBD_RECENCY,
                        "t": PARETO_NBD_AGE,
                        "horizon": horizon,
                        "params": params,
                    }
                )
    return cases


def evaluate_case_mp(case):
    """Evaluate one case's closed form at the current mpmath precision."""
    params = [to_mp(value) for value in case["params"]]
    horizon = to_mp(case["horizon"]) if case["horizon"] is not None else None
    if case["quantity"] == "unconditional_expected":
        return bgnbd_unconditional_expected_mp(horizon, *params)
    x, t_x, age = (to_mp(case[key]) for key in ("frequency", "recency", "t"))
    if case["model"] == "bgnbd":
        return bgnbd_conditional_expected_mp(x, t_x, age, horizon, *params)
    if case["quantity"] == "p_alive":
        return pareto_nbd_p_alive_mp(x, t_x, age, *params)
    if case["quantity"] == "expected":
        return pareto_nbd_conditional_expected_mp(x, t_x, age, horizon, *params)
    return pareto_nbd_log_likelihood_mp(x, t_x, age, *params)


def evaluate_case_by_quadrature(case):
    """Evaluate one case with the numerical integral in place of 2F1."""
    params = [to_mp(value) for value in case["params"]]
    horizon = to_mp(case["horizon"]) if case["horizon"] is not None else None
    if case["quantity"] == "unconditional_expected":
        zero = mpmath.mpf(0)
        return bgnbd_expected_by_quadrature(zero, zero, zero, horizon, *params)
    x, t_x, age = (to_mp(case[key]) for key in ("frequency", "recency", "t"))
    if case["model"] == "bgnbd":
        return bgnbd_expected_by_quadrature(x, t_x, age, horizon, *params)
    a0 = pareto_nbd_a0_by_quadrature(x, t_x, age, *params)
    if case["quantity"] == "p_alive":
        return pareto_nbd_p_alive_mp(x, t_x, age, *params, a0=a0)
    if case["quantity"] == "expected":
        return pareto_nbd_conditional_expected_mp(x, t_x, age, horizon, *params, a0=a0)
    return pareto_nbd_log_likelihood_mp(x, t_x, age, *params, a0=a0)


def evaluate_case_lifetimes(case):
    """Return lifetimes' float64 value for one case."""
    if case["model"] == "bgnbd":
        fitter = BetaGeoFitter()
        fitter.params_ = pd.Series(case["params"], index=BGNBD_PARAM_NAMES, dtype=float)
    else:
        fitter = ParetoNBDFitter()
        fitter.params_ = pd.Series(
            case["params"], index=PARETO_NBD_PARAM_NAMES, dtype=float
        )
    history = (float(case["frequency"] or 0), case["recency"], case["t"])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if case["quantity"] == "unconditional_expected":
            value = fitter.expected_number_of_purchases_up_to_time(case["horizon"])
        elif case["quantity"] == "expected":
            value = fitter.conditional_expected_number_of_purchases_up_to_time(
                case["horizon"], *history
            )
        elif case["quantity"] == "p_alive":
            value = fitter.conditional_probability_alive(*history)
        else:
            value = ParetoNBDFitter._conditional_log_likelihood(
                list(case["params"]), *history
            )
    return float(np.asarray(value, dtype=float).reshape(-1)[0])


def compute_high_precision_values(cases):
    """Add `value` (an mpmath number) and `lifetimes_value` to every case."""
    for case in cases:
        with mpmath.workdps(WORKING_DPS):
            value = evaluate_case_mp(case)
        with mpmath.workdps(CHECK_DPS):
            check = evaluate_case_mp(case)
            difference = abs(value - check) / abs(check)
        if difference > mpmath.mpf(10) ** -(OUTPUT_DIGITS + 2):
            raise RuntimeError(
                f"{case['model']} {case['quantity']} at frequency {case['frequency']}"
                f" lost precision: {WORKING_DPS} and {CHECK_DPS} digits differ by"
                f" {mpmath.nstr(difference, 3)} relative"
            )
        case["value"] = value
        case["lifetimes_value"] = evaluate_case_lifetimes(case)


def check_high_precision_by_quadrature(cases):
    worst = mpmath.mpf(0)
    with mpmath.workdps(QUADRATURE_DPS):
        for case in cases:
            integral = evaluate_case_by_quadrature(case)
            difference = abs(integral - case["value"]) / abs(case["value"])
            worst = max(worst, difference)
            if difference > QUADRATURE_AGREEMENT:
                raise RuntimeError(
                    f"{case['model']} {case['quantity']} at frequency"
                    f" {case['frequency']}: the closed form and the quadrature differ"
                    f" by {mpmath.nstr(difference, 3)} relative"
                )
    print(
        f"high_precision.csv: closed form against quadrature, max relative difference"
        f" {mpmath.nstr(worst, 3)} over {len(cases)} cases"
    )


def check_high_precision_against_lifetimes(cases):
    """Compare the mpmath values with lifetimes where lifetimes is finite."""
    worst = {}
    for case in cases:
        if not math.isfinite(case["lifetimes_value"]):
            continue
        key = (case["model"], case["quantity"])
        difference = relative_difference(case["lifetimes_value"], float(case["value"]))
        worst[key] = max(worst.get(key, 0.0), difference)
        if difference > LIFETIMES_AGREEMENT:
            raise RuntimeError(
                f"{case['model']} {case['quantity']} at frequency {case['frequency']}:"
                f" lifetimes returns {case['lifetimes_value']!r}, mpmath"
                f" {mpmath.nstr(case['value'], 20)}. Check the installed versions"
                " against requirements.txt"
            )
    for (model, quantity), difference in sorted(worst.items()):
        print(
            f"high_precision.csv: {model} {quantity}, mpmath against lifetimes where"
            f" lifetimes is finite, max relative difference {difference:.1e}"
        )
    non_finite = sum(1 for case in cases if not math.isfinite(case["lifetimes_value"]))
    print(
        f"high_precision.csv: lifetimes is NaN or infinite in {non_finite} of {len(cases)} cases"
    )


def write_high_precision_csv(path, cases):
    header = [
        "model",
        "quantity",
        "frequency",
        "recency",
        "t",
        "horizon",
        "r",
        "alpha",
        "a_or_s",
        "b_or_beta",
        "value",
        "lifetimes_value",
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for case in cases:
            writer.writerow(
                [
                    case["model"],
                    case["quantity"],
                    format_frequency(case),
                    format_optional(case["recency"]),
                    format_optional(case["t"]),
                    format_optional(case["horizon"]),
                ]
                + [format_float(value) for value in case["params"]]
                + [
                    format_high_precision(case["value"]),
                    format_float(case["lifetimes_value"]),
                ]
            )


def format_high_precision(value):
    """Format with OUTPUT_DIGITS significant digits, in fixed notation for 1e-3 <= |value| < 1e6."""
    return mpmath.nstr(
        value, OUTPUT_DIGITS, strip_zeros=False, min_fixed=-4, max_fixed=6
    )


def format_frequency(case):
    return "" if case["frequency"] is None else str(int(case["frequency"]))


def print_high_precision_table(cases):
    for case in cases:
        print(
            f"  {case['model']:<10} {case['quantity']:<22}"
            f" x={format_frequency(case):<4}"
            f" t_x={format_optional(case['recency']):<6}"
            f" T={format_optional(case['t']):<6}"
            f" h={format_optional(case['horizon']):<5}"
            f" params={case['params']}"
            f" value={mpmath.nstr(case['value'], 20)}"
            f" lifetimes={case['lifetimes_value']!r}"
        )
