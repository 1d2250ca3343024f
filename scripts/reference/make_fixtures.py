"""Write reference values from lifetimes 0.11.3 and mpmath for cra's model tests.

Run from the repository root after `pip install -r scripts/reference/requirements.txt`:

    python scripts/reference/make_fixtures.py

The script reads the CDNOW summaries in data/cdnow/ and writes into
tests/fixtures/models/:

- params.json: BG/NBD, Pareto/NBD and MBG/NBD fits on cdnow_customers_summary.csv,
  a Gamma-Gamma fit on the customers with x > 0 of
  cdnow_customers_summary_with_transactions.csv, each with its log-likelihood
  summed over customers, and the package versions.
- bgnbd_scores.csv, pareto_nbd_scores.csv, mbgnbd_scores.csv: P(alive) and the
  conditional expected purchases in the next 39 and 52 weeks for every customer,
  computed by lifetimes at the parameters in params.json.
- gamma_gamma_scores.csv: the Gamma-Gamma expected spend and lifetimes' 12-month
  customer lifetime value for every customer.
- high_precision.csv: closed-form values at 50 significant digits computed with
  mpmath, mostly for inputs where lifetimes returns NaN.

Time is in weeks throughout. Floats are written with repr, so they parse back to
the same f64, and NaN and infinity are written as `nan` and `inf`. The output is
the same on every run: the Pareto/NBD fit draws its starting point from numpy's
legacy random generator, which the script seeds with 0.

Log-likelihoods in params.json
------------------------------
lifetimes fits on times divided by the maximum T (38.86 weeks for CDNOW) and
stores the minimized objective in `_negative_log_likelihood_`. For
BetaGeoFitter, ModifiedBetaGeoFitter and GammaGammaFitter the objective is the
mean negative log-likelihood per customer. For ParetoNBDFitter it is the sum
divided by the mean weight, which is the sum here because every weight is 1.
The likelihood of x purchases is a density in the purchase times, in units of
time^-x, so the log-likelihood in weeks is the scaled one minus
sum(x) * log(max T). The Gamma-Gamma fit uses no time scaling. params.json
stores `log_likelihood`, recomputed in weeks at the written parameters from the
model's own likelihood function in lifetimes, and `log_likelihood_from_fit`,
converted from `_negative_log_likelihood_` as above. The script raises if the
two differ by more than 1e-9 relative.

Customer lifetime value (clv_12m)
---------------------------------
GammaGammaFitter.customer_lifetime_value(bgf, x, t_x, T, zbar, time=12,
discount_rate=0.01, freq="W") in lifetimes 0.11.3 (fitters/gamma_gamma_fitter.py
and _customer_lifetime_value in utils.py) computes, in float64:

1. m = conditional_expected_average_profit(x, zbar). The raw zbar is not used.
   For x = 0 the individual weight is 0, so m is the population mean
   p * v / (q - 1).
2. factor = 4.345 weeks per month (the value for freq="W").
3. For k = 1, ..., 12 it sets i = k * 4.345, computed as
   numpy.arange(1, 13) * 4.345. The expected purchases in month k are
   E(i) - E(i - 4.345), where E(h) is
   bgf.conditional_expected_number_of_purchases_up_to_time(h, x, t_x, T).
   i - 4.345 is a float subtraction, which differs from (k - 1) * 4.345 in the
   last bit for k = 3, 6 and 12. For k = 1, E(0) is exactly 0 (lifetimes
   returns -0.0).
4. It discounts month k by dividing (m * (E(i) - E(i - 4.345))) by
   (1 + 0.01) ** (i / 4.345). The float quotient i / 4.345 is exactly k for
   k = 1, ..., 12.
5. clv is the sum of the 12 discounted terms, added in the order k = 1, ..., 12
   to a column that starts at 0.

There is no margin factor and no discounting within a month. The 12 months cover
52.14 weeks after T.

Closed forms evaluated with mpmath (high_precision.csv)
-------------------------------------------------------
2F1(a, b; c; z) is the Gauss hypergeometric function (mpmath.hyp2f1). The inputs
are the f64 values nearest the decimal parameters (for example float(0.243)),
converted exactly to mpmath numbers, so each value is exact to 50 significant
digits for the f64 inputs that a Rust test passes. The expressions are the ones
that lifetimes 0.11.3 implements, with the sources that its docstrings cite. The
script checks them against lifetimes where lifetimes is finite, and against
numerical integrals of the model definitions (mpmath.quad) everywhere.

BG/NBD. lifetimes cites Fader, Hardie and Lee (2005), "Counting your customers
the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2),
equations 9 and 10:

- Unconditional expectation (equation 9): E[X(t)] is
  (a + b - 1) / (a - 1) times [1 - (alpha / (alpha + t))^r times
  2F1(r, b; a + b - 1; t / (alpha + t))].
- Conditional expectation of the purchases in the next t weeks for a customer
  with x repeat purchases, the last at t_x, and age T (equation 10): the
  numerator is (a + b + x - 1) / (a - 1) times
  [1 - ((alpha + T) / (alpha + T + t))^(r + x) times
  2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))].
  The denominator is 1 + [x > 0] times a / (b + x - 1) times
  ((alpha + T) / (alpha + t_x))^(r + x).
- P(alive), used only to check bgnbd_scores.csv, is 1 for x = 0 and otherwise
  1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)).
- The quadrature check integrates the posterior expectation of
  (1 / p) * (1 - exp(-lambda * p * t)) over p after integrating over lambda in
  closed form.

When a + b < 1 and x = 0, the third argument a + b - 1 is negative. The
2F1 value is then negative for some inputs (-0.0776 for a = 0.3, b = 0.4,
T = 10, t = 39), and lifetimes returns NaN because it takes the log of 2F1.
The expectation itself is finite.

Pareto/NBD (Schmittlein, Morrison and Colombo, 1987). lifetimes cites Fader and
Hardie, "A note on deriving the Pareto/NBD model and related expressions"
(2005), equations 18 to 20 (likelihood), 36 and 37 (P(alive)) and 41
(conditional expectation). For a customer with x repeat purchases, the last at
t_x, and age T:

- A_0, for alpha >= beta: 2F1(r + s + x, s + 1; r + s + x + 1;
  (alpha - beta) / (alpha + t_x)) / (alpha + t_x)^(r + s + x) minus the same
  with T in place of t_x. For alpha < beta: 2F1(r + s + x, r + x;
  r + s + x + 1; (beta - alpha) / (beta + t_x)) / (beta + t_x)^(r + s + x)
  minus the same with T in place of t_x.
- Likelihood: L is Gamma(r + x) * alpha^r * beta^s / Gamma(r) times
  [1 / ((alpha + T)^(r + x) * (beta + T)^s) + s / (r + s + x) * A_0].
  The log-likelihood is log L.
- P(alive) is 1 / [1 + s / (r + s + x) * (alpha + T)^(r + x) * (beta + T)^s * A_0].
- Conditional expectation of the purchases in the next t weeks: P(alive) times
  (r + x) * (beta + T) / ((alpha + T) * (s - 1)) times
  [1 - ((beta + T) / (beta + T + t))^(s - 1)].
- The quadrature check uses s / (r + s + x) * A_0 =
  s * integral from t_x to T of (alpha + y)^-(r + x) * (beta + y)^-(s + 1) dy.

For large x and alpha < beta, the 2F1 values overflow f64 (about 2e455 for
x = 200 with r 0.553, alpha 10.578, s 64, beta 7721), and lifetimes returns NaN
from inf - inf.

The mpmath functions are in closed_forms.py, and the cases of high_precision.csv
with their checks are in high_precision.py.
"""

import csv
import json
import math
import platform
import time
import warnings
from importlib.metadata import version as package_version
from pathlib import Path

import lifetimes
import mpmath
import numpy as np
import pandas as pd
import scipy
from lifetimes import (
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
)

from closed_forms import (
    BGNBD_PARAM_NAMES,
    PARETO_NBD_PARAM_NAMES,
    bgnbd_conditional_expected_mp,
    bgnbd_p_alive_mp,
    pareto_nbd_a0_mp,
    pareto_nbd_conditional_expected_mp,
    pareto_nbd_p_alive_mp,
    to_mp,
)
from fixture_values import format_float, relative_difference
from high_precision import (
    LIFETIMES_AGREEMENT,
    build_high_precision_cases,
    check_high_precision_against_lifetimes,
    check_high_precision_by_quadrature,
    compute_high_precision_values,
    print_high_precision_table,
    write_high_precision_csv,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY_CSV = REPO_ROOT / "data" / "cdnow" / "cdnow_customers_summary.csv"
TRANSACTIONS_CSV = (
    REPO_ROOT / "data" / "cdnow" / "cdnow_customers_summary_with_transactions.csv"
)
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "models"

SCORE_HORIZONS_WEEKS = (39, 52)
PARETO_NBD_FIT_SEED = 0
# The defaults of ParetoNBDFitter.fit in lifetimes 0.11.3, passed explicitly so
# that params.json records them.
PARETO_NBD_FIT_OPTIONS = {"fit_method": "Nelder-Mead", "tol": 1e-4, "maxiter": 2000}
CLV_MONTHS = 12
CLV_MONTHLY_DISCOUNT_RATE = 0.01
GAMMA_GAMMA_PARAM_NAMES = ["p", "q", "v"]

LOG_LIKELIHOOD_AGREEMENT = 1e-9
# Every CROSS_CHECK_STRIDE-th CDNOW customer is also scored with mpmath, at
# COMPARISON_DPS digits, which is ample for comparing with float64 values.
CROSS_CHECK_STRIDE = 20
COMPARISON_DPS = 30


def load_inputs():
    summary = pd.read_csv(SUMMARY_CSV)
    transactions = pd.read_csv(TRANSACTIONS_CSV)
    if list(summary.columns) != ["ID", "frequency", "recency", "T"]:
        raise ValueError(
            f"{SUMMARY_CSV}: expected the columns ID, frequency, recency, T,"
            f" found {list(summary.columns)}"
        )
    if list(transactions.columns) != ["ID", "x", "t_x", "T", "zbar"]:
        raise ValueError(
            f"{TRANSACTIONS_CSV}: expected the columns ID, x, t_x, T, zbar,"
            f" found {list(transactions.columns)}"
        )
    return summary, transactions


def summed_log_likelihood_bg_family(fitter_class, params, frequency, recency, age):
    """Sum the BG/NBD or MBG/NBD log-likelihood over customers, in weeks."""
    log_params = np.log(np.array([params[name] for name in BGNBD_PARAM_NAMES]))
    weights = np.ones(len(frequency))
    mean_negative = fitter_class._negative_log_likelihood(
        log_params, frequency, recency, age, weights, 0.0
    )
    return -float(mean_negative) * len(frequency)


def summed_log_likelihood_pareto_nbd(params, frequency, recency, age):
    """Sum the Pareto/NBD log-likelihood over customers, in weeks."""
    values = [params[name] for name in PARETO_NBD_PARAM_NAMES]
    per_customer = ParetoNBDFitter._conditional_log_likelihood(
        values, frequency, recency, age
    )
    return float(np.sum(per_customer))


def summed_log_likelihood_gamma_gamma(params, frequency, monetary_value):
    """Sum the Gamma-Gamma log-likelihood of the mean spends over customers."""
    log_params = np.log(np.array([params[name] for name in GAMMA_GAMMA_PARAM_NAMES]))
    weights = np.ones(len(frequency))
    mean_negative = GammaGammaFitter._negative_log_likelihood(
        log_params, frequency, monetary_value, weights, 0.0
    )
    return -float(mean_negative) * len(frequency)


def check_log_likelihoods(name, recomputed, from_fit):
    difference = relative_difference(recomputed, from_fit)
    print(
        f"{name}: log-likelihood {recomputed!r} (from the fit: {from_fit!r},"
        f" relative difference {difference:.1e})"
    )
    if difference > LOG_LIKELIHOOD_AGREEMENT:
        raise RuntimeError(
            f"{name}: the recomputed log-likelihood {recomputed!r} differs from the"
            f" one converted from _negative_log_likelihood_ ({from_fit!r}). Check"
            " that the installed lifetimes is 0.11.3"
        )


def fit_models(summary, transactions):
    """Fit the four lifetimes models and return their params.json entries and fitters."""
    frequency = summary["frequency"].to_numpy().astype(int)
    recency = summary["recency"].to_numpy(dtype=float)
    age = summary["T"].to_numpy(dtype=float)
    customers = len(summary)
    # The fitters divide times by max(T). See the module docstring.
    time_scale_correction = -float(frequency.sum()) * math.log(age.max())

    entries = {}
    fitters = {}

    for key, fitter_class in [
        ("bgnbd", BetaGeoFitter),
        ("mbgnbd", ModifiedBetaGeoFitter),
    ]:
        fitter = fitter_class(penalizer_coef=0.0).fit(frequency, recency, age)
        params = {name: float(fitter.params_[name]) for name in BGNBD_PARAM_NAMES}
        recomputed = summed_log_likelihood_bg_family(
            fitter_class, params, frequency, recency, age
        )
        from_fit = (
            -float(fitter._negative_log_likelihood_) * customers + time_scale_correction
        )
        check_log_likelihoods(fitter_class.__name__, recomputed, from_fit)
        entries[key] = {
            "fitter": fitter_class.__name__,
            "params": params,
            "log_likelihood": recomputed,
            "log_likelihood_from_fit": from_fit,
            "customers": customers,
            "penalizer_coef": 0.0,
        }
        fitters[key] = fitter

    # ParetoNBDFitter draws its starting point from numpy's global generator.
    np.random.seed(PARETO_NBD_FIT_SEED)
    pareto = ParetoNBDFitter(penalizer_coef=0.0).fit(
        frequency, recency, age, **PARETO_NBD_FIT_OPTIONS
    )
    params = {name: float(pareto.params_[name]) for name in PARETO_NBD_PARAM_NAMES}
    recomputed = summed_log_likelihood_pareto_nbd(params, frequency, recency, age)
    from_fit = -float(pareto._negative_log_likelihood_) + time_scale_correction
    check_log_likelihoods("ParetoNBDFitter", recomputed, from_fit)
    entries["pareto_nbd"] = {
        "fitter": "ParetoNBDFitter",
        "params": params,
        "log_likelihood": recomputed,
        "log_likelihood_from_fit": from_fit,
        "customers": customers,
        "penalizer_coef": 0.0,
        "numpy_random_seed": PARETO_NBD_FIT_SEED,
        "fit_options": PARETO_NBD_FIT_OPTIONS,
    }
    fitters["pareto_nbd"] = pareto

    repeat_buyers = transactions[transactions["x"] > 0]
    repeat_frequency = repeat_buyers["x"].to_numpy(dtype=float)
    repeat_spend = repeat_buyers["zbar"].to_numpy(dtype=float)
    gamma_gamma = GammaGammaFitter(penalizer_coef=0.0).fit(
        repeat_frequency, repeat_spend
    )
    params = {
        name: float(gamma_gamma.params_[name]) for name in GAMMA_GAMMA_PARAM_NAMES
    }
    recomputed = summed_log_likelihood_gamma_gamma(
        params, repeat_frequency, repeat_spend
    )
    from_fit = -float(gamma_gamma._negative_log_likelihood_) * len(repeat_buyers)
    check_log_likelihoods("GammaGammaFitter", recomputed, from_fit)
    entries["gamma_gamma"] = {
        "fitter": "GammaGammaFitter",
        "params": params,
        "log_likelihood": recomputed,
        "log_likelihood_from_fit": from_fit,
        "customers": len(repeat_buyers),
        "penalizer_coef": 0.0,
    }
    fitters["gamma_gamma"] = gamma_gamma

    return entries, fitters


def build_params_document(entries):
    return {
        "generator": "scripts/reference/make_fixtures.py",
        "versions": {
            "lifetimes": lifetimes.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
            "autograd": package_version("autograd"),
            "mpmath": mpmath.__version__,
            "python": platform.python_version(),
        },
        "data": {
            "summary": "data/cdnow/cdnow_customers_summary.csv",
            "summary_with_transactions": (
                "data/cdnow/cdnow_customers_summary_with_transactions.csv"
            ),
            "time_unit": "weeks",
        },
        "models": entries,
    }


def apply_written_params(fitters, document):
    """Set each fitter's params_ to the values parsed back from params.json."""
    names = {
        "bgnbd": BGNBD_PARAM_NAMES,
        "mbgnbd": BGNBD_PARAM_NAMES,
        "pareto_nbd": PARETO_NBD_PARAM_NAMES,
        "gamma_gamma": GAMMA_GAMMA_PARAM_NAMES,
    }
    for key, fitter in fitters.items():
        written = document["models"][key]["params"]
        values = [written[name] for name in names[key]]
        fitter.params_ = pd.Series(values, index=names[key], dtype=float)


def score_customers(fitter, summary):
    """Return P(alive) and the expected purchases per horizon for every customer."""
    frequency = summary["frequency"].to_numpy().astype(int)
    recency = summary["recency"].to_numpy(dtype=float)
    age = summary["T"].to_numpy(dtype=float)
    # NaN is an expected output for some customers, so its warnings are muted.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_alive = np.asarray(
            fitter.conditional_probability_alive(frequency, recency, age), dtype=float
        ).reshape(-1)
        expected = {
            horizon: np.asarray(
                fitter.conditional_expected_number_of_purchases_up_to_time(
                    horizon, frequency, recency, age
                ),
                dtype=float,
            ).reshape(-1)
            for horizon in SCORE_HORIZONS_WEEKS
        }
    return p_alive, expected


def write_scores_csv(path, summary, p_alive, expected):
    header = ["id", "frequency", "recency", "t", "p_alive"] + [
        f"expected_{horizon}" for horizon in SCORE_HORIZONS_WEEKS
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for index, row in enumerate(summary.itertuples(index=False)):
            writer.writerow(
                [
                    int(row.ID),
                    int(row.frequency),
                    format_float(row.recency),
                    format_float(row.T),
                    format_float(p_alive[index]),
                ]
                + [
                    format_float(expected[horizon][index])
                    for horizon in SCORE_HORIZONS_WEEKS
                ]
            )


def count_non_finite(values):
    array = np.asarray(values, dtype=float)
    return int(np.isnan(array).sum()), int(np.isinf(array).sum())


def score_gamma_gamma(gamma_gamma, bgnbd, transactions):
    """Return the expected spend and 12-month CLV for every customer."""
    frequency = transactions["x"]
    monetary_value = transactions["zbar"]
    expected_spend = gamma_gamma.conditional_expected_average_profit(
        frequency, monetary_value
    )
    clv = gamma_gamma.customer_lifetime_value(
        bgnbd,
        frequency,
        transactions["t_x"],
        transactions["T"],
        monetary_value,
        time=CLV_MONTHS,
        discount_rate=CLV_MONTHLY_DISCOUNT_RATE,
        freq="W",
    )
    return (
        np.asarray(expected_spend, dtype=float),
        np.asarray(clv, dtype=float),
    )


def write_gamma_gamma_csv(path, transactions, expected_spend, clv):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["id", "frequency", "monetary_value", "expected_spend", "clv_12m"]
        )
        for index, row in enumerate(transactions.itertuples(index=False)):
            writer.writerow(
                [
                    int(row.ID),
                    int(row.x),
                    format_float(row.zbar),
                    format_float(expected_spend[index]),
                    format_float(clv[index]),
                ]
            )


def check_scores_against_mpmath(fitters, summary, scores):
    """Score every CROSS_CHECK_STRIDE-th customer with mpmath and compare with lifetimes."""
    bg_params = [to_mp(fitters["bgnbd"].params_[name]) for name in BGNBD_PARAM_NAMES]
    pareto_params = [
        to_mp(fitters["pareto_nbd"].params_[name]) for name in PARETO_NBD_PARAM_NAMES
    ]
    worst = {}

    def record(key, lifetimes_value, reference):
        if not math.isfinite(lifetimes_value):
            return
        difference = relative_difference(lifetimes_value, float(reference))
        worst[key] = max(worst.get(key, 0.0), difference)

    with mpmath.workdps(COMPARISON_DPS):
        for index in range(0, len(summary), CROSS_CHECK_STRIDE):
            row = summary.iloc[index]
            x, t_x, age = (to_mp(row[key]) for key in ("frequency", "recency", "T"))
            record(
                "bgnbd p_alive",
                scores["bgnbd"][0][index],
                bgnbd_p_alive_mp(x, t_x, age, *bg_params),
            )
            a0 = pareto_nbd_a0_mp(x, t_x, age, *pareto_params)
            record(
                "pareto_nbd p_alive",
                scores["pareto_nbd"][0][index],
                pareto_nbd_p_alive_mp(x, t_x, age, *pareto_params, a0=a0),
            )
            for horizon in SCORE_HORIZONS_WEEKS:
                t = to_mp(horizon)
                record(
                    f"bgnbd expected_{horizon}",
                    scores["bgnbd"][1][horizon][index],
                    bgnbd_conditional_expected_mp(x, t_x, age, t, *bg_params),
                )
                record(
                    f"pareto_nbd expected_{horizon}",
                    scores["pareto_nbd"][1][horizon][index],
                    pareto_nbd_conditional_expected_mp(
                        x, t_x, age, t, *pareto_params, a0=a0
                    ),
                )
    checked = len(range(0, len(summary), CROSS_CHECK_STRIDE))
    for key, difference in sorted(worst.items()):
        print(
            f"scores: {key}, lifetimes against mpmath on {checked} customers,"
            f" max relative difference {difference:.1e}"
        )
        if difference > LIFETIMES_AGREEMENT:
            raise RuntimeError(
                f"scores: lifetimes' {key} differs from mpmath by {difference:.1e}"
                " relative. Check the installed versions against requirements.txt"
            )


def write_fixtures(params_text, summary, transactions, scores, gamma_gamma, cases):
    """Write every fixture file and print its row and NaN counts."""
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    (FIXTURE_DIR / "params.json").write_text(params_text)

    for key, (p_alive, expected) in scores.items():
        path = FIXTURE_DIR / f"{key}_scores.csv"
        write_scores_csv(path, summary, p_alive, expected)
        counts = {"p_alive": count_non_finite(p_alive)}
        for horizon in SCORE_HORIZONS_WEEKS:
            counts[f"expected_{horizon}"] = count_non_finite(expected[horizon])
        counts_text = ", ".join(
            f"{column} {nan} NaN {inf} inf" for column, (nan, inf) in counts.items()
        )
        print(f"{path.name}: {len(summary)} rows, {counts_text}")

    expected_spend, clv = gamma_gamma
    path = FIXTURE_DIR / "gamma_gamma_scores.csv"
    write_gamma_gamma_csv(path, transactions, expected_spend, clv)
    spend_nan, spend_inf = count_non_finite(expected_spend)
    clv_nan, clv_inf = count_non_finite(clv)
    print(
        f"{path.name}: {len(transactions)} rows, expected_spend {spend_nan} NaN"
        f" {spend_inf} inf, clv_12m {clv_nan} NaN {clv_inf} inf"
    )

    write_high_precision_csv(FIXTURE_DIR / "high_precision.csv", cases)
    print(f"high_precision.csv: {len(cases)} rows")
    print_high_precision_table(cases)


def main():
    started = time.perf_counter()
    print(
        f"lifetimes {lifetimes.__version__}, numpy {np.__version__},"
        f" scipy {scipy.__version__}, pandas {pd.__version__},"
        f" autograd {package_version('autograd')}, mpmath {mpmath.__version__},"
        f" Python {platform.python_version()}"
    )
    summary, transactions = load_inputs()
    if not summary["ID"].equals(transactions["ID"]):
        raise ValueError(
            f"{SUMMARY_CSV} and {TRANSACTIONS_CSV} list different customers"
        )

    entries, fitters = fit_models(summary, transactions)
    params_text = json.dumps(build_params_document(entries), indent=2) + "\n"
    # Score at the parameters as params.json stores them. repr round-trips, so
    # these are the fitted floats, but this keeps the two tied together.
    apply_written_params(fitters, json.loads(params_text))
    for entry in entries.values():
        print(f"{entry['fitter']}: {entry['params']}")

    scores = {
        key: score_customers(fitters[key], summary)
        for key in ("bgnbd", "pareto_nbd", "mbgnbd")
    }
    gamma_gamma = score_gamma_gamma(
        fitters["gamma_gamma"], fitters["bgnbd"], transactions
    )
    check_scores_against_mpmath(fitters, summary, scores)

    cases = build_high_precision_cases()
    compute_high_precision_values(cases)
    check_high_precision_by_quadrature(cases)
    check_high_precision_against_lifetimes(cases)

    # Nothing is written until every check above has passed.
    write_fixtures(params_text, summary, transactions, scores, gamma_gamma, cases)
    print(f"done in {time.perf_counter() - started:.1f} s, wrote {FIXTURE_DIR}")


if __name__ == "__main__":
    main()
