"""BG/NBD and Pareto/NBD closed forms and quadrature checks in mpmath.

Each function evaluates at the current mpmath precision and takes mpmath numbers,
with the parameters in the order of BGNBD_PARAM_NAMES or PARETO_NBD_PARAM_NAMES.
The docstring of make_fixtures.py states the formulas and their sources.
"""

import mpmath

# Parameter order of the functions below and of lifetimes' params_.
BGNBD_PARAM_NAMES = ["r", "alpha", "a", "b"]
PARETO_NBD_PARAM_NAMES = ["r", "alpha", "s", "beta"]


def to_mp(value):
    """Convert a value exactly to mpmath, by way of the nearest f64."""
    return mpmath.mpf(float(value))


def bgnbd_unconditional_expected_mp(t, r, alpha, a, b):
    hyp = mpmath.hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


def bgnbd_conditional_expected_mp(x, t_x, age, t, r, alpha, a, b):
    hyp = mpmath.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
    numerator = (a + b + x - 1) / (a - 1)
    numerator *= 1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp
    denominator = 1
    if x > 0:
        denominator += a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    return numerator / denominator


def bgnbd_p_alive_mp(x, t_x, age, r, alpha, a, b):
    if x == 0:
        return mpmath.mpf(1)
    odds = a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    return 1 / (1 + odds)


def bgnbd_expected_by_quadrature(x, t_x, age, t, r, alpha, a, b):
    """Integrate the BG/NBD posterior expectation of the next t weeks' purchases.

    With x = 0 and age = 0 this is the unconditional E[X(t)]. After integrating
    over lambda, the numerator is the integral over p of p^(a - 1) *
    (1 - p)^(b + x - 1) * h(p) / p, where h(p) = 1 - (1 + p t / (alpha + age))^-(r + x).
    Both ends of [0, 1] can be singular, so the integral is split at 1/2 and
    substituted (p = u^(1/a) below 1/2, 1 - p = v^(1/(b + x)) above), which
    makes the integrand smooth for tanh-sinh quadrature.
    """

    def h_over_p(p):
        h = -mpmath.expm1(-(r + x) * mpmath.log1p(p * t / (alpha + age)))
        return h / p

    c = b + x
    half = mpmath.mpf(1) / 2
    lower = (
        mpmath.quad(
            lambda u: (1 - u ** (1 / a)) ** (c - 1) * h_over_p(u ** (1 / a)),
            [0, half**a],
        )
        / a
    )
    upper = (
        mpmath.quad(
            lambda v: (1 - v ** (1 / c)) ** (a - 1) * h_over_p(1 - v ** (1 / c)),
            [0, half**c],
        )
        / c
    )
    numerator = (lower + upper) / mpmath.beta(a, b)

    denominator = mpmath.beta(a, b + x) / mpmath.beta(a, b)
    if x > 0:
        denominator += (
            mpmath.beta(a + 1, b + x - 1)
            / mpmath.beta(a, b)
            * ((alpha + age) / (alpha + t_x)) ** (r + x)
        )
    return numerator / denominator


def pareto_nbd_a0_mp(x, t_x, age, r, alpha, s, beta):
    total = r + s + x
    if alpha >= beta:
        second, larger = s + 1, alpha
    else:
        second, larger = r + x, beta
    gap = abs(alpha - beta)

    def term(time):
        hyp = mpmath.hyp2f1(total, second, total + 1, gap / (larger + time))
        return hyp / (larger + time) ** total

    return term(t_x) - term(age)


def pareto_nbd_a0_by_quadrature(x, t_x, age, r, alpha, s, beta):
    """Compute A_0 by quadrature, without 2F1.

    A_0 is (r + s + x) times the integral from t_x to T of
    (alpha + y)^-(r + x) * (beta + y)^-(s + 1) dy.

    The integrand is divided by its value at y = t_x, because mpmath.quad stops
    on an absolute error and the integral can be below 1e-250.
    """

    def scaled_integrand(y):
        return ((alpha + t_x) / (alpha + y)) ** (r + x) * (
            (beta + t_x) / (beta + y)
        ) ** (s + 1)

    scale = (alpha + t_x) ** (-(r + x)) * (beta + t_x) ** (-(s + 1))
    integral = mpmath.quad(scaled_integrand, mpmath.linspace(t_x, age, 5))
    return (r + s + x) * integral * scale


def pareto_nbd_log_likelihood_mp(x, t_x, age, r, alpha, s, beta, a0=None):
    if a0 is None:
        a0 = pareto_nbd_a0_mp(x, t_x, age, r, alpha, s, beta)
    log_front = (
        mpmath.loggamma(r + x)
        - mpmath.loggamma(r)
        + r * mpmath.log(alpha)
        + s * mpmath.log(beta)
    )
    alive_term = 1 / ((alpha + age) ** (r + x) * (beta + age) ** s)
    return log_front + mpmath.log(alive_term + s / (r + s + x) * a0)


def pareto_nbd_p_alive_mp(x, t_x, age, r, alpha, s, beta, a0=None):
    if a0 is None:
        a0 = pareto_nbd_a0_mp(x, t_x, age, r, alpha, s, beta)
    odds = s / (r + s + x) * (alpha + age) ** (r + x) * (beta + age) ** s * a0
    return 1 / (1 + odds)


def pareto_nbd_conditional_expected_mp(x, t_x, age, t, r, alpha, s, beta, a0=None):
    p_alive = pareto_nbd_p_alive_mp(x, t_x, age, r, alpha, s, beta, a0)
    rate = (r + x) * (beta + age) / ((alpha + age) * (s - 1))
    return p_alive * rate * (1 - ((beta + age) / (beta + age + t)) ** (s - 1))
