"""Published two-group tests as data of the group model: a p-value, t, z or F statistic
enters the likelihood as the probability that the named test, run on cohorts of the
published sizes, prints the published value.

Simulating the test statistic inside the sampler's gradient is out of reach, so its
large-sample distribution is used, written as an exact functional of the two populations:

* Welch's and Student's t: ``T = (mean_a - mean_b) / se_hat`` is, to first order, a sum of
  per-subject influence terms ``(X - mu_g) / sqrt(W) - D lambda_g / (2 W^1.5) ((X - mu_g)^2
  - sigma_g^2)`` (``D = mu_a - mu_b``, ``W = se^2``, ``lambda_g = dW / d sigma_g^2``); its
  mean carries the second-order terms of ``D_hat / sqrt(W_hat)`` (the skew of the data);
* Mann-Whitney: ``theta_hat = U / (n_a n_b)`` has mean ``theta = P(X_a > X_b)``, the exact
  U-statistic variance from the placement variances ``Var F_b(X_a)``, ``Var F_a(X_b)``, and
  first-order influence terms ``F_b(X_a) - theta`` and ``1 - F_a(X_b) - theta``.

The paper's statistic is computed on the same cohorts as the groups' published statistics,
so the term is the statistic's distribution **conditioned** on them (the covariate model
does the same for its claims, docs/decisions/joint-claims.md): the log statistics' influence
functions (mean, SD, SEM, quantiles, IQR) give their covariance with the test statistic, and
a normal conditional follows (:func:`models.hierarchical.condition_on_statistics`).  A t
statistic next to both groups' means and SDs is a function of them: it adds nothing and is
only checked (:func:`claim_use`).  Sample extremes have no large-sample normal law and are
asymptotically independent of central statistics: they are not conditioned on (the
benchmark ``benchmarks/bench_two_group.py`` measures how little they correlate).

Every expectation is a closed form of the lognormal (moments and partial moments) or, for
the placements, a fixed Gauss-Legendre quadrature over the standard normal deviate, so the
term is a smooth PyTensor graph.  Only the lognormal family has it; with another family the
claims stay checks (:data:`FAMILIES`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from .statistics import CI_LEVEL, QUANTILE_P, modelled_statistics, t_interval_factor
from .study import TEST_CLAIM_STATISTICS, Study

#: Families whose populations this term can write in closed form.
FAMILIES = ("lognormal",)
#: Claim statistics of a two-group test and the tests that produce each.
TEST_STATISTICS = TEST_CLAIM_STATISTICS
#: Group statistics the term is conditioned on (their large-sample law is normal).
CONDITIONED = ("mean", "sd", "sem", *QUANTILE_P, "iqr")
#: Sample extremes: no large-sample normal law, so not conditioned on.  Mann-Whitney's U
#: hardly depends on them given the central statistics (partial correlation at most 0.09
#: at n = 217-219, up to 0.28 at n = 29-52); a t statistic does (up to 0.76 with the
#: larger group's maximum), so a t claim next to published extremes stays a check
#: (benchmarks/results/two-group-approximation.txt).
EXTREMES = ("min", "max")
#: Quadrature of the placements: panels of this width between -LIMIT and LIMIT (and at
#: every quantile's deviate), each with ORDER Gauss-Legendre nodes.  Against the closed
#: form of P(X_a > X_b) the error is below 1e-12 at CVs up to 3.
PANEL, LIMIT, ORDER = 0.5, 12.0, 8
#: Largest share of the statistic's variance the published statistics may explain.  Its
#: variance, its covariances and the statistics' covariance all come from one Gram matrix
#: of influence functions, so the explained share cannot exceed the first-order part (the
#: covariate model's cap of 0.75 guards approximations of different origin); Mann-Whitney's
#: second-order part and rounding keep it below 1.  The cap only guards round-off.
MAX_EXPLAINED = 0.99


@dataclass(frozen=True)
class TwoGroupTerm:
    """One published test statistic as a likelihood term of the group model."""

    name: str
    """``<comparison>.<claim>``."""
    groups: tuple[str, str]
    test: str
    sizes: tuple[int, int]
    bounds: tuple[float, float]
    """The published value as an interval of ``|T|`` on the model's scale (t for the t tests,
    ``U / (n_a n_b) - 1/2`` for Mann-Whitney); the upper end may be infinite."""
    conditioned: tuple[tuple[str, ...], tuple[str, ...]]
    """Per group, the published statistics it is conditioned on."""


def claim_test(study: Study, claim) -> str:
    """The test behind a claim: the one the claim names, else the study's ``group_test``."""
    return claim.test or study.setting("group_test")


def _determined(study: Study, groups, test: str) -> bool:
    """A t statistic is a function of both groups' published means and SDs (or SEMs)."""
    if test not in ("student_t", "welch_t"):
        return False
    stats = [modelled_statistics(study.reported(g)) for g in groups]
    return all("mean" in rep and any(k in rep for k in ("sd", "sem", "mean_ci_half")) for rep in stats)


def claim_use(study: Study, cid: str, key: str, family: str = "lognormal") -> tuple[str, str]:
    """Role of a comparison claim in the group model and the reason: ``("likelihood",
    why)`` when the term below uses it, else ``("check", why)``.

    The study file's ``use: check`` keeps a usable claim out; a claim the model cannot use
    is a check whatever ``use`` says (the study file rejects ``use: likelihood`` on it at
    load, :func:`unusable_reason`).
    """
    claim = study.comparisons[cid].claims[key]
    why = unusable_reason(study, cid, key)
    if why is not None:
        return "check", why
    test = claim_test(study, claim)
    if family not in FAMILIES:
        return "check", f"the two-group test term is written for the {', '.join(FAMILIES)} family only (fitted: {family})"
    if claim.use == "check":
        return "check", "the study file says use: check"
    return "likelihood", f"probability that the {test} statistic prints it, given the groups' published statistics (large-sample normal)"


def unusable_reason(study: Study, cid: str, key: str) -> str | None:
    """Why the group model cannot fit a comparison claim (whatever the family), or None."""
    comp = study.comparisons[cid]
    claim = comp.claims[key]
    if claim.statistic not in TEST_STATISTICS:
        if claim.statistic in ("ratio_of_means", "ratio_of_medians"):
            return "a ratio of the groups' sample statistics: checked, not a test the model turns into a probability"
        return f"statistic {claim.statistic!r} is not a two-group test statistic ({', '.join(TEST_STATISTICS)})"
    if (claim.relation is None and claim.low is None) or claim.relation == "~":
        return "only a published value or threshold of a test statistic is fitted, not an approximate or qualitative claim"
    test = claim_test(study, claim)
    if _determined(study, comp.groups, test):
        return "determined by the published statistics (a t test's statistic is a function of both groups' means and SDs)"
    if test in ("student_t", "welch_t") and any(x in study.reported(g) for g in comp.groups for x in EXTREMES):
        # the SD behind the t statistic leans on the largest values: given the central
        # statistics, t still correlates up to -0.76 with the log maximum in simulated
        # cohorts, and the term cannot condition on extremes
        return "a t statistic depends on the published sample extremes, which the large-sample term cannot condition on"
    return None


def _abs_interval(claim) -> tuple[float, float]:
    """A published t, z or F claim as an interval of ``|t|`` or ``|z|`` (F is t squared)."""
    rel, v = claim.relation, claim.value
    if rel == "=":
        lo, hi = claim.printed_interval
        lo, hi = (lo, hi) if v >= 0 else (-hi, -lo)
        lo = max(lo, 0.0)
    elif rel in ("<", "<="):
        lo, hi = 0.0, abs(v)
    else:
        lo, hi = abs(v), math.inf
    if claim.statistic == "F":
        lo, hi = math.sqrt(max(lo, 0.0)), math.sqrt(hi)
    return lo, hi


def _p_to_abs(p: float, test: str, df: float) -> float:
    """``|t|`` or ``|z|`` at which the two-sided p-value of ``test`` equals ``p``."""
    if p <= 0.0:
        return math.inf
    if p >= 1.0:
        return 0.0
    return float(sps.norm.isf(p / 2.0) if test == "mann_whitney" else sps.t.isf(p / 2.0, df))


def reference_df(study: Study, groups, test: str) -> float:
    """Degrees of freedom of the t distribution a paper's p was read from: ``n_a + n_b - 2``
    for Student's test; Welch-Satterthwaite from the published SDs (or SEMs) for Welch's,
    else ``n_a + n_b - 2`` (then the p-to-t reading is slightly off for unequal spreads)."""
    na, nb = (study.n(g) for g in groups)
    if test == "welch_t":
        se2 = []
        for g in groups:
            rep, n = modelled_statistics(study.reported(g)), study.n(g)
            if "sd" in rep:
                se2.append(rep["sd"] ** 2 / n)
            elif "sem" in rep:
                se2.append(rep["sem"] ** 2)
            elif "mean_ci_half" in rep:
                se2.append((rep["mean_ci_half"] / t_interval_factor(n)) ** 2)
        if len(se2) == 2:
            return (se2[0] + se2[1]) ** 2 / (se2[0] ** 2 / (na - 1) + se2[1] ** 2 / (nb - 1))
    return float(na + nb - 2)


def difference_ci_t(study: Study, cid: str, key: str) -> tuple[float, float]:
    """The t statistic a published 95% interval of the difference in means stands for, as
    the interval of values its printed ends allow (signed, first group minus second).

    A t interval is ``d -+ q * SE`` with ``q`` the t quantile at the test's degrees of
    freedom, so ``t = d / SE = q * (low + high) / (high - low)``; that is monotone in each
    end, so its extremes over the ends' printed precision lie at the corners.
    """
    comp = study.comparisons[cid]
    claim = comp.claims[key]
    df = reference_df(study, comp.groups, claim_test(study, claim))
    q = float(sps.t.isf((1.0 - CI_LEVEL) / 2.0, df))
    (l0, l1), (h0, h1) = claim.printed_ends()
    corners = [q * (lo + hi) / (hi - lo) for lo in (l0, l1) for hi in (h0, h1) if hi > lo]
    return min(corners), max(corners)


def statistic_bounds(study: Study, cid: str, key: str) -> tuple[float, float]:
    """The published claim as an interval of ``|T|`` on the model's scale
    (:attr:`TwoGroupTerm.bounds`)."""
    comp = study.comparisons[cid]
    claim = comp.claims[key]
    test = claim_test(study, claim)
    na, nb = (study.n(g) for g in comp.groups)
    if claim.statistic == "p_value":
        df = reference_df(study, comp.groups, test)
        if claim.relation == "=":
            plo, phi = claim.printed_interval
            lo, hi = _p_to_abs(phi, test, df), _p_to_abs(plo, test, df)
        elif claim.relation in ("<", "<="):
            lo, hi = _p_to_abs(claim.value, test, df), math.inf
        else:
            lo, hi = 0.0, _p_to_abs(claim.value, test, df)
    elif claim.statistic == "difference_ci":
        tlo, thi = difference_ci_t(study, cid, key)
        lo, hi = (0.0, max(-tlo, thi)) if tlo <= 0.0 <= thi else (min(abs(tlo), abs(thi)), max(abs(tlo), abs(thi)))
    else:
        lo, hi = _abs_interval(claim)
    if test == "mann_whitney":
        # scipy's and SPSS's normal approximation: |z| = (|U - n_a n_b / 2| - 1/2) / sigma_0
        sigma0 = math.sqrt(na * nb * (na + nb + 1) / 12.0)
        lo, hi = ((sigma0 * z + 0.5) / (na * nb) if z > 0 else 0.0 for z in (lo, hi))
        hi = math.inf if not math.isfinite(hi) else hi
    return float(lo), float(hi)


def two_group_terms(study: Study, family: str = "lognormal") -> list[TwoGroupTerm]:
    """The comparison claims the group model fits (:func:`claim_use`), in file order."""
    out = []
    for cid, comp in study.comparisons.items():
        for key, claim in comp.claims.items():
            if claim_use(study, cid, key, family)[0] != "likelihood":
                continue
            cond = tuple(tuple(s for s in modelled_statistics(study.reported(g)) if s in CONDITIONED) for g in comp.groups)
            out.append(TwoGroupTerm(f"{cid}.{key}", tuple(comp.groups), claim_test(study, claim),
                                    tuple(study.n(g) for g in comp.groups), statistic_bounds(study, cid, key), cond))
    return out


# -- the large-sample law ------------------------------------------------------------------
def _ndtr(xp, z):
    return special.ndtr(z) if xp is np else 0.5 * xp.erfc(-z / math.sqrt(2.0))


def quadrature(cuts=()) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z`` and weights ``w`` (including the normal density) for ``E[g(Z)]``, with
    panel edges at every deviate in ``cuts`` so that ``E[g(Z) 1{Z <= c}]`` is a partial
    sum of smooth panels."""
    edges = np.unique(np.concatenate([np.arange(-LIMIT, LIMIT + PANEL / 2, PANEL), np.asarray(cuts, float)]))
    x, wx = np.polynomial.legendre.leggauss(ORDER)
    half = np.diff(edges)[:, None] / 2.0
    mid = (edges[:-1] + edges[1:])[:, None] / 2.0
    z = (mid + half * x[None, :]).ravel()
    w = (half * wx[None, :]).ravel() * np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return z, w


def _stack(xp, rows):
    if xp is np:
        return np.array([[np.asarray(v, float) for v in r] for r in rows], dtype=float)
    return xp.stack([xp.stack([xp.as_tensor_variable(v, dtype="float64") for v in r]) for r in rows])


class _Group:
    """One lognormal group in units of the reference level: log location ``m`` and scale
    ``s``, with the Gram matrix of the basis ``(1, Y, Y^2, 1{Z <= c_1}, ..., [g])`` of
    functions of a subject's level (``Y = X / mean``; ``g`` an optional extra function at
    the quadrature nodes) that every influence function here is a combination of."""

    def __init__(self, xp, m, s, n: int, names, extra=None, nodes=None):
        self.xp, self.m, self.s, self.n, self.names = xp, m, s, n, tuple(names)
        self.cuts = sorted({float(sps.norm.ppf(p)) for p in self._quantile_ps()})
        self.mean = xp.exp(m + 0.5 * s**2)
        self.var = xp.exp(s**2) - 1.0  # of Y
        e = [1.0, 1.0, xp.exp(s**2), xp.exp(3.0 * s**2), xp.exp(6.0 * s**2)]  # E[Y^j]
        self.e = e
        Q = len(self.cuts)
        B = 3 + Q + (extra is not None)
        G = [[None] * B for _ in range(B)]
        for i in range(3):
            for j in range(3):
                G[i][j] = e[i + j]
            for q, c in enumerate(self.cuts):
                G[i][3 + q] = G[3 + q][i] = e[i] * _ndtr(xp, c - i * s)
        for q, c in enumerate(self.cuts):
            for r, d in enumerate(self.cuts):
                G[3 + q][3 + r] = float(sps.norm.cdf(min(c, d)))
        if extra is not None:
            z, w = nodes
            y = xp.exp(s * z - 0.5 * s**2)
            basis = [1.0 + 0.0 * y, y, y * y] + [((z <= c) * 1.0) for c in self.cuts]
            for i, b in enumerate(basis):
                G[i][B - 1] = G[B - 1][i] = (w * b * extra).sum()
            G[B - 1][B - 1] = (w * extra * extra).sum()
        self.B = B
        self.G = _stack(xp, G)

    def _quantile_ps(self):
        ps = [QUANTILE_P[x] for x in self.names if x in QUANTILE_P]
        if "iqr" in self.names:
            ps += [0.25, 0.75]
        return ps

    def _cut(self, p: float) -> int:
        return self.cuts.index(float(sps.norm.ppf(p)))

    def vec(self, coefs: dict):
        """A basis combination from ``{index: coefficient}``."""
        xp = self.xp
        out = [0.0] * self.B
        for i, c in coefs.items():
            out[i] = c
        if xp is np:
            return np.array([np.asarray(v, float) for v in out])
        return xp.stack([xp.as_tensor_variable(v, dtype="float64") for v in out])

    def quad_if(self, lin, quad):
        """``lin (Y - 1) + quad ((Y - 1)^2 - var)``."""
        return self.vec({0: -lin + quad * (1.0 - self.var), 1: lin - 2.0 * quad, 2: quad})

    def statistic_if(self, name: str):
        """Influence function of the log statistic ``name`` (mean zero)."""
        xp, s = self.xp, self.s
        if name == "mean":
            return self.quad_if(1.0, 0.0)
        if name in ("sd", "sem"):
            return self.quad_if(0.0, 0.5 / self.var)
        if name in QUANTILE_P:
            p = QUANTILE_P[name]
            k = s / float(sps.norm.pdf(sps.norm.ppf(p)))
            return self.vec({0: p * k, 3 + self._cut(p): -k})
        if name == "iqr":
            z1, z3 = sps.norm.ppf(0.25), sps.norm.ppf(0.75)
            q1, q3 = xp.exp(s * z1), xp.exp(s * z3)
            k1, k3 = s * q1 / sps.norm.pdf(z1), s * q3 / sps.norm.pdf(z3)
            width = q3 - q1
            return self.vec({0: (0.75 * k3 - 0.25 * k1) / width, 3 + self._cut(0.75): -k3 / width, 3 + self._cut(0.25): k1 / width})
        raise ValueError(f"no influence function for statistic {name!r}")

    def log_value(self, name: str):
        """Log of the population's value of ``name`` (reference units)."""
        xp, m, s = self.xp, self.m, self.s
        if name == "mean":
            return m + 0.5 * s**2
        if name in ("sd", "sem"):
            out = m + 0.5 * s**2 + 0.5 * xp.log(self.var)
            return out - 0.5 * math.log(self.n) if name == "sem" else out
        if name in QUANTILE_P:
            return m + s * float(sps.norm.ppf(QUANTILE_P[name]))
        if name == "iqr":
            return m + xp.log(xp.exp(s * sps.norm.ppf(0.75)) - xp.exp(s * sps.norm.ppf(0.25)))
        raise ValueError(name)

    def cov(self, a, b):
        xp = self.xp
        if xp is np:
            return float(a @ self.G @ b)
        return xp.dot(a, xp.dot(self.G, b))

    def statistics_law(self):
        """Mean (with the first-order bias of :func:`models.asymptotic.statistic_moments`)
        and covariance of the group's log statistics, and their influence functions."""
        xp = self.xp
        psi = [self.statistic_if(x) for x in self.names]
        k = len(psi)
        cov = [[self.cov(psi[i], psi[j]) / self.n for j in range(k)] for i in range(k)]
        e = self.e
        kurt = (e[4] - 4.0 * e[3] + 6.0 * e[2] - 3.0) / self.var**2
        mean = []
        for i, x in enumerate(self.names):
            mu = self.log_value(x) - 0.5 * cov[i][i]
            if x in ("sd", "sem"):
                mu = mu - (kurt - 1.0) / (8.0 * self.n)
            mean.append(mu)
        if xp is np:
            return np.array(mean, float), np.array(cov, float), psi
        return xp.stack(mean), _stack(xp, cov), psi


def _welch_law(xp, ga: _Group, gb: _Group, test: str):
    """Mean, variance and per-group influence functions of a t statistic."""
    na, nb = ga.n, gb.n
    mua, mub = ga.mean, gb.mean
    va, vb = ga.var * mua**2, gb.var * mub**2
    if test == "welch_t":
        lam = (1.0 / na, 1.0 / nb)
    else:
        f = (1.0 / na + 1.0 / nb) / (na + nb - 2)
        lam = ((na - 1) * f, (nb - 1) * f)
    W = lam[0] * va + lam[1] * vb
    D = mua - mub
    ifs, mom = [], []
    for g, sign, l, mu in ((ga, 1.0, lam[0], mua), (gb, -1.0, lam[1], mub)):
        ifs.append(g.quad_if(sign * mu / xp.sqrt(W), -D * l * mu**2 / (2.0 * W**1.5)))
        e = g.e
        mu3 = mu**3 * (e[3] - 3.0 * e[2] + 2.0)
        mu4 = mu**4 * (e[4] - 4.0 * e[3] + 6.0 * e[2] - 3.0)
        sig4 = (g.var * mu**2) ** 2
        mom.append((sign * l * mu3 / g.n, l**2 * ((mu4 - sig4) / g.n + 2.0 * sig4 / (g.n * (g.n - 1)))))
    cov_dw = mom[0][0] + mom[1][0]
    var_w = mom[0][1] + mom[1][1]
    mean = D / xp.sqrt(W) - 0.5 * cov_dw / W**1.5 + 0.375 * D * var_w / W**2.5
    var = ga.cov(ifs[0], ifs[0]) / na + gb.cov(ifs[1], ifs[1]) / nb
    return mean, var, ifs


def _placements(xp, ma, sa, mb, sb, nodes):
    """``F_b(X_a)`` and ``F_a(X_b)`` at the quadrature nodes of each group's deviate."""
    z, _ = nodes
    return _ndtr(xp, (ma + sa * z - mb) / sb), _ndtr(xp, (mb + sb * z - ma) / sa)


def term_law(xp, term: TwoGroupTerm, params, nodes=None):
    """The test statistic's large-sample law and its covariance with the groups' log
    statistics.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    term : TwoGroupTerm
    params : tuple
        ``((m_a, s_a), (m_b, s_b))``: each group's log-scale location (reference units) and
        scale.
    nodes : tuple, optional
        :func:`quadrature` with the groups' quantile deviates as cuts.

    Returns
    -------
    dict
        ``mean``, ``var`` of ``T``; per group ``cross`` (Cov(T, log statistics), k_g),
        ``stats_mean``, ``stats_cov`` (the conditioned statistics' law).
    """
    (ma, sa), (mb, sb) = params
    na, nb = term.sizes
    if nodes is None:
        cuts = [sps.norm.ppf(p) for p in (0.25, 0.75, *QUANTILE_P.values())]
        nodes = quadrature(cuts)
    if term.test == "mann_whitney":
        fa, fb = _placements(xp, ma, sa, mb, sb, nodes)
        ga = _Group(xp, ma, sa, na, term.conditioned[0], extra=fa, nodes=nodes)
        gb = _Group(xp, mb, sb, nb, term.conditioned[1], extra=fb, nodes=nodes)
        w = nodes[1]
        theta = (w * fa).sum()
        v10 = (w * fa * fa).sum() - theta**2
        ea = (w * fb).sum()
        v01 = (w * fb * fb).sum() - ea**2
        mean = theta - 0.5
        var = (theta * (1.0 - theta) + (na - 1) * v01 + (nb - 1) * v10) / (na * nb)
        # F_b(X_a) - theta and 1 - F_a(X_b) - theta = E[F_a(X_b)] - F_a(X_b): mean zero
        ifs = [ga.vec({0: -theta, ga.B - 1: 1.0}), gb.vec({0: ea, gb.B - 1: -1.0})]
    else:
        ga = _Group(xp, ma, sa, na, term.conditioned[0])
        gb = _Group(xp, mb, sb, nb, term.conditioned[1])
        mean, var, ifs = _welch_law(xp, ga, gb, term.test)
    out = {"mean": mean, "var": var, "cross": [], "stats_mean": [], "stats_cov": []}
    for g, f in ((ga, ifs[0]), (gb, ifs[1])):
        smean, scov, psi = g.statistics_law()
        cross = [g.cov(f, p) / g.n for p in psi]
        out["cross"].append(np.array(cross, float) if xp is np else (xp.stack(cross) if cross else None))
        out["stats_mean"].append(smean)
        out["stats_cov"].append(scov)
    return out


def conditional_law(xp, term: TwoGroupTerm, params, observed, rounding: float = 0.0, nodes=None):
    """Mean and variance of ``T`` given the groups' published log statistics.

    ``observed`` holds, per group, the log published values of ``term.conditioned`` in
    reference units; ``rounding`` is the published values' rounding width in the same
    units (its variance ``w^2 / 12`` is added to the statistics', as the covariate model
    does).  Returns ``(mean, var, law)``.
    """
    from .hierarchical import condition_on_statistics

    law = term_law(xp, term, params, nodes)
    cross, stats = [], []
    for obs, c, smean, scov, names in zip(observed, law["cross"], law["stats_mean"], law["stats_cov"], term.conditioned):
        k = len(names)
        if k == 0:
            continue
        if rounding > 0:
            extra = (rounding**2 / 12.0) / xp.exp(2.0 * obs) + 1e-12
            cov = scov + extra[:, None] * np.eye(k)
        else:
            cov = scov + 1e-12 * np.eye(k)
        cross.append(c)
        stats.append((obs, smean, cov, k))
    mu, v = condition_on_statistics(xp, law["mean"], law["var"], cross, stats, max_explained=MAX_EXPLAINED)
    return mu, v, law


def event_log_prob(xp, mu, v, bounds):
    """``log P(lo <= |T| <= hi)`` for ``T`` normal with mean ``mu`` and variance ``v``."""
    lo, hi = bounds
    sd = xp.sqrt(v)
    if xp is np:
        from scipy.special import log_ndtr as lnd

        def lower(x):
            return lnd((x - mu) / sd)

        def upper(x):
            return lnd((mu - x) / sd)

        def interval(a, b):
            # the side of the interval where the tails are small: no cancellation
            return np.where(mu > 0.5 * (a + b), np.log(-np.expm1(upper(b) - upper(a))) + upper(a),
                            np.log(-np.expm1(lower(a) - lower(b))) + lower(b))

        if not math.isfinite(hi):
            return np.logaddexp(upper(lo), lower(-lo))
        return np.logaddexp(interval(lo, hi), interval(-hi, -lo))
    from .hierarchical import interval_log_prob, log_ndtr
    import pymc as pm

    def lower(x):
        return log_ndtr((x - mu) / sd)

    def upper(x):
        return log_ndtr((mu - x) / sd)

    def interval(a, b):
        return interval_log_prob(lower(a), lower(b), upper(a), upper(b), lower(0.5 * (a + b)))

    if not math.isfinite(hi):
        return pm.math.logaddexp(upper(lo), lower(-lo))
    return pm.math.logaddexp(interval(lo, hi), interval(-hi, -lo))


def lognormal_params(xp, log_mean, log_cv):
    """Log-scale location and scale of a lognormal with mean ``exp(log_mean)`` (reference
    units) and CV ``exp(log_cv)``."""
    s = xp.sqrt(xp.log1p(xp.exp(2.0 * log_cv)))
    return log_mean - 0.5 * s**2, s


def simulate_term(term: TwoGroupTerm, family, populations, cohorts: int, rng: np.random.Generator, quantile_method: int = 7):
    """The test statistic on the model's scale and the conditioned log statistics (reference
    units as given) over simulated cohorts of the published sizes: the reference the law
    is validated against.

    Parameters
    ----------
    term : TwoGroupTerm
    family : Family
    populations : tuple
        ``((mean_a, cv_a), (mean_b, cv_b))``.
    cohorts : int
    rng : np.random.Generator

    Returns
    -------
    T : array (cohorts,)
    stats : list of array (cohorts, k_g)
        Log statistics of ``term.conditioned``; ``extremes`` (log min and max) are appended
        as a third entry, per group (cohorts, 2) each, for the correlation check.
    """
    from .simulate import simulate_group, sorted_normals
    from .statistics import mann_whitney_u, sample_statistics

    xs = []
    for n, (mean, cv) in zip(term.sizes, populations):
        xs.append(simulate_group(np, family, sorted_normals(rng, cohorts, n), mean, cv))
    a, b = xs
    if term.test == "mann_whitney":
        T = mann_whitney_u(a, b) / (term.sizes[0] * term.sizes[1]) - 0.5
    else:
        from .statistics import group_test_statistic

        T = group_test_statistic(a, b, term.test)
    stats = [np.log(sample_statistics(np, x, n, names, quantile_method)) if names else np.zeros((cohorts, 0))
             for x, n, names in zip(xs, term.sizes, term.conditioned)]
    extremes = [np.log(np.stack([x[:, 0], x[:, -1]], axis=-1)) for x in xs]
    return T, stats, extremes


def claims_hold(terms, cohorts: dict[str, np.ndarray]) -> dict[str, float]:
    """Whether each term's published claim holds on one simulated study (group id -> sorted
    cohort): ``claim_holds_<comparison>_<claim>`` -> 1.0 or 0.0, the observed value a
    simulated study gives the term (calibration)."""
    from .statistics import group_test_statistic, mann_whitney_u

    out = {}
    for term in terms:
        a, b = (cohorts[g][None] for g in term.groups)
        if term.test == "mann_whitney":
            T = mann_whitney_u(a, b)[0] / (term.sizes[0] * term.sizes[1]) - 0.5
        else:
            T = group_test_statistic(a, b, term.test)[0]
        lo, hi = term.bounds
        out[f"claim_holds_{term.name.replace('.', '_')}"] = float(lo <= abs(T) <= hi)
    return out
