"""The hierarchical covariate model: a regression for every simulated subject, fitted to every
published number and claim of the study at once (README, "The hierarchical covariate model").

For subject ``i`` of group ``g`` in a simulated cohort (design from :mod:`models.cohort`)::

    log(K_i / reference_level) = alpha[g] + sum_c slope[g, c] * x_ic + u[level_i] + sigma[g] * eps_i

* ``alpha[g] = intercept + group_difference[g]`` (the first group is the reference, so
  ``group_difference`` has one entry per other group);
* ``slope[g, c] = effect[c] + effect_spread[c] * z[g, c]``, ``z`` standard normal, for a
  covariate defined in several groups (partial pooling through the population-level
  ``effect`` and ``effect_spread``), sampled as the groups' mean slope, the deviations from
  it and the effect given it (:func:`pooled_effects`); ``effect[c]`` for a covariate of
  one group;
* ``u = category_spread * category_z``: the categorical breakdown (subtype) as a random
  effect with a hierarchical scale;
* residuals ``eps``: standard normal (family ``normal``, i.e. lognormal levels) or Student-t
  (family ``student_t``, represented in the likelihood as an 8-node scale mixture of normals,
  :func:`models.asymptotic.residual_nodes`).

The covariates come from a fixed design of ``reps`` cohorts (:func:`models.cohort.build_design`),
which serves as a quadrature of the covariate distribution: a group's population is the
equal-weight mixture of the lognormals of its design subjects.  The design is stored padded,
(group, cohort, subject slot), so every group is a slice of one array and each step below is
a handful of vector operations for all groups at once.  Likelihood, one observed term per
published item, all in closed form (no simulation inside the sampler):

* each group's reported statistics (mean, SD, quantiles): multivariate normal on the log scale
  with the large-sample moments of the mixture, corrected to the group's sample size with
  simulated tables of the residual family (:mod:`models.asymptotic`), plus declared rounding;
* each association claim: observed to hold (1) or not (0), with the probability that the
  claim's least-squares estimate satisfies it in a random cohort of the design *given the
  published statistics of the same cohort*: the estimate's normal approximation (moments
  over the claim's own CLAIM_REPS cohorts, within plus between;
  :func:`claim_moments_over_cohorts`; its covariances with the statistics from the design
  cohorts, :func:`association_moments`) conditioned
  on the groups' observed log statistics through closed-form cross-covariances
  (influence functions and Stein's lemma, :func:`models.asymptotic.influence_covariances`,
  :func:`condition_on_statistics`); an interval for "approximately", a one-sided t
  threshold for "significantly", a sign otherwise.  Given the statistics the claims are
  taken as independent of one another (what that leaves out is measured in
  docs/decisions/joint-claims.md);
* each comparison claim that is not a function of reported numbers (``p_value``): the same,
  for the declared group test's statistic (:func:`group_test_log_prob`), not conditioned on
  the statistics (on the real study it holds in every simulated cohort, so conditioning
  could not move it; a study where it is marginal would need the rank statistic's
  projection on the subjects' levels).

An earlier version simulated cohorts inside the likelihood (40 per evaluation): sample
quantiles made the log density jump with every rank swap (NUTS step size 0.026), and a first
fit to the real study took 262 s and failed its sampler checks (README, "hierarchical model").
"""
from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .asymptotic import SUPPORTED, build_correction, corrected_moments, influence_covariances, mixture_mean_cv2, ndtr, residual_nodes, stack_corrections
from .cohort import Design, build_design, claim_design, claim_linear_forms, modelled_associations, stack_claims, triangle
from .deferred import DeferredGraph
from .group import ROUNDING_FLOOR, moment_estimates, rounding_width
from .likelihood import mvn_logp, rounding_variance_log
from .priors import PriorError, prior_variable
from .study import Study

#: Residual families on the log scale.
FAMILIES = {
    "normal": "normal residuals on the log scale (lognormal levels)",
    "student_t": "Student-t residuals on the log scale (heavier tails; df from the prior set)",
}
DEFAULT_FAMILY = "normal"
#: Cohorts of the fixed design (the quadrature of the covariate distribution): reps x N
#: mixture components per evaluation.  The cost of a gradient grows with it (JAX, one
#: chain inside a compiled loop: 0.20 ms at 2, 0.30 ms at 5; benchmarks/README.md); the claims'
#: between-cohort variance needs at least 2.
DEFAULT_REPS = 5
#: Fewest design cohorts: the claims' between-cohort variance needs two.
MIN_REPS = 2
#: Comparison-claim statistics that are functions of reported numbers when those are given;
#: they enter through the numbers and are only checked, never counted twice.
_REDUNDANT = {"ratio_of_means": "mean", "ratio_of_medians": "median"}
#: NUTS target acceptance.  The residual scale trades off against the covariate effects
#: (summary statistics cannot tell them apart well), and a group whose reported median
#: exceeds its mean (the Lasemi controls) pulls the posterior towards small residual SDs
#: with a bimodal population, where the median's density changes fast.  At 0.95 that left
#: 1-12 divergences in 4 x (1000 + 500) draws for each of 3 seeds; at 0.99, none
#: for 2 seeds, at 1.4x the leapfrog steps (52 instead of 33-39 per iteration).
#: (A dense mass matrix did not help: 41 instead of 25 leapfrog steps per iteration.)
#: With the pooled slopes sampled as mean slope, deviations and offset (:func:`pooled_effects`)
#: 0.99 samples the real study cleanly but diverges in more calibration fits than 0.995
#: (12 against 7 of 50), and 0.95 diverges on the real study too, in the residual SDs'
#: tails: a divergence fails a fit, so the target is the smallest step that avoids them
#: (docs/decisions/target-acceptance.md).
TARGET_ACCEPT = 0.995
#: Tree-depth cap during warm-up only (reanalysis.sampling.CompiledNuts).  Warm-up starts from a
#: unit mass matrix while the group levels have posterior SDs near 0.05 and the standardised
#: effects near 1: at this target acceptance the first 100 iterations took 480 and 220
#: leapfrog steps each (a third of all gradients of a default fit).  Capped at 31 steps,
#: the default fit sampled in 52 s instead of 95 s with the same adapted step sizes
#: (0.07-0.09), 0 divergences and minimum bulk/tail ESS 1928/1351 instead of 1746/1540
#: (warm, one run each; benchmarks/README.md).
WARMUP_TREE_DEPTH = 5
#: Warm-up iterations per chain of a default fit (fit.py --tune).  Every warm-up iteration
#: runs at the WARMUP_TREE_DEPTH cap (31 leapfrog steps), so warm-up costs in proportion to
#: its length: 1000 iterations took about as long as the 500 kept draws.  Measured on the
#: real study, seeds 1-10 of 4 chains x 500 draws each (benchmarks/bench_warmup.py,
#: benchmarks/results/warmup-*.txt):
#:
#: =============================  ==========  ==========  ================  ================
#: warm-up                        divergent   would       median gradients  chains with step
#:                                runs        continue    per chain         size below 0.06
#: =============================  ==========  ==========  ================  ================
#: 500                            3 of 10     3 of 10     40,400            1 of 40
#: 750                            0 of 10     0 of 10     48,500            3 of 40
#: 1000                           0 of 10     1 of 10     57,000            1 of 40
#: 1000, tree cap 15              1 of 10     0 of 10     40,000            4 of 40
#: two phases, 400 + 100 (below)  0 of 10     1 of 10     41,000            12 of 40
#: =============================  ==========  ==========  ================  ================
#:
#: 500 adapted similar step sizes but diverged in 3 of 10 runs, and a divergence fails the
#: fit.  750 (a last mass-matrix window of 450 iterations; 1000: 500 after one of 200) had
#: none in those 10, but on the default seed its tail ESS after 500 draws was 448, the fit
#: continued to 1000 draws, and one of them diverged: `python scripts/fit.py` failed its
#: gate (exit 3, 101 s).  The counts are small, but both shorter warm-ups gave divergences
#: where 1000 had given none (these 10 seeds, the default seed, seed 11 continued to 1000
#: draws).  With the joint likelihood and target acceptance 0.995, 1000 still diverged
#: once on the default seed (draw 256, at the neck of the age effect's spread); 1500 gave
#: none there or on seed 11 (docs/decisions/warmup.md), so the default was 1500 until
#: that neck was removed (below).
#:
#: A two-phase warm-up was measured and rejected (benchmarks/README.md, warm-up): the mass
#: matrix adapted at a lower target acceptance,
#: pooled over the chains, then a step-size-only phase at TARGET_ACCEPT, the draws at the
#: chains' smallest step size.  It is not the default.  With 400 iterations at 0.8 + 100
#: (benchmarks/results/warmup-*two-phase*.txt) it cut the median gradients per chain by 28%
#: with no divergence, but on seed 5 one chain adapted a step size of 0.017 in the upper tail
#: of log_sigma[ms] (chain mean -1.01, the others -1.49 to -1.54), all chains drew at it
#: (232-244 steps per draw) and the estimands' tail ESS was 11 (R-hat 1.09): a failed fit.
#: That region is not a separate mode (the default fit's draws reach it: 99.5% quantile
#: -0.72), but one diagonal mass matrix fits it badly.
#:
#: With the pooled slopes sampled through their mean (:func:`pooled_effects`), 1000 had no
#: divergence on seeds 1-10 (target acceptance 0.99) or on the default seed (0.99 and
#: 0.995), at 0.80 times the gradients per chain of 1500 (docs/decisions/warmup.md, "1000
#: again").
DEFAULT_TUNE = 1000
#: Kept draws per chain of a default fit, and the most it may extend to
#: (reanalysis.analysis.extend_draws: blocks of DEFAULT_DRAWS while an estimand's bulk or tail
#: ESS is below reanalysis.diagnostics.TARGET_ESS).  On the real study 4 x 500 draws gave a
#: minimum bulk/tail ESS of 1031/617 over the estimands (1000 draws: 2142/1326), but
#: another seed has given a tail ESS of 202 from 4 x 500 (README, "Validation and speed"):
#: such a fit continues instead of failing the gate.
DEFAULT_DRAWS = 500
MAX_DRAWS = 2000
#: What each sampled parameter measures (axis labels of the prior-versus-posterior figure).
PARAMETER_SCALES = {
    "intercept": "log of level / reference level",
    "group_difference": "log ratio to the first group",
    "effect_single": "change in log level per covariate unit",
    "effect_spread": "SD of the group slopes, log level per unit",
    "slope_mean": "change in log level per covariate unit",
    "effect_offset": "standardised, no unit",
    "effect_z": "standardised, no unit",
    "category_spread": "SD of the category effects, log level",
    "category_z": "standardised, no unit",
    "log_sigma": "log of the residual SD of log levels",
}
#: Sampler backend (reanalysis.analysis): the log density has about a thousand small
#: operations, which PyMC's C backend runs one by one (about 4 ms per gradient, plus 30-60 s
#: of graph rewriting on every run); JAX/XLA fuses them (reanalysis.sampling.CompiledNuts).
SAMPLER = "jax"
#: Largest share of a claim's variance that conditioning on the published statistics may
#: explain (models.hierarchical.condition_on_statistics).  The claim's variance (within
#: plus between the design cohorts) and its covariances with the statistics are separate
#: approximations; where they disagree the conditional variance could vanish.  On the real
#: study simulated cohorts let the statistics explain up to 0.62 of a claim's variance (the
#: optic claim at a posterior draw), while the model's own variance of that claim was 30%
#: below the simulated one (docs/decisions/joint-claims.md); with a floor at 1% of the
#: variance instead, both divergences of a first fit sat where the sex claim's conditional
#: variance had hit it (simulated there: 0.45 explained).
MAX_EXPLAINED = 0.75
#: Design cohorts used for a rank test's P(X_a > X_b): it compares every pair of components,
#: (TEST_REPS n_a) x (TEST_REPS n_b) of them.  One is enough: the p-value claims of such
#: studies sit far in the tail, and the pairs were the most expensive operation of the graph.
TEST_REPS = 1
#: Design cohorts over which each claim's mean and variance are averaged
#: (:func:`claim_moments_over_cohorts`).  A claim's estimate varies between cohorts through
#: the covariates (a skewed attack rate makes ``1 / sum (x - mean)^2`` vary a lot), and the
#: model's 5 mixture cohorts estimated that variance with 4 degrees of freedom: at one
#: parameter point the attack claim's variance came out 0.0055 with 5 cohorts, 0.0052 with
#: 40 and 0.0063 with 200, against 0.0066 in 20,000 simulated cohorts
#: (docs/decisions/joint-claims.md).  Here the cohorts enter through precomputed linear
#: forms: the coefficient's mean and variance over them are exact quadratic forms in the
#: effects, so their number costs build time only.
CLAIM_REPS = 2000
#: Of those, the cohorts kept one by one for a claim on a t statistic, whose standard error
#: is not linear in the effects (``R`` quadratic forms per such claim in the gradient): its
#: between-cohort spread is small next to the coefficient's, which uses all cohorts.
CLAIM_T_REPS = 200


def resolve_priors(study: Study, priors: dict, design: Design) -> dict:
    """Turn a prior set into per-parameter values for this study.

    ``effect.<covariate>`` entries override ``effect`` for one covariate; a prior mean of
    ``"claimed"`` is taken from the study's claims: the log of ``1 + value/100`` for an
    approximate percent claim, ``-+claimed_size`` for a directional claim, and for
    ``group_difference`` minus the log of a ratio claimed between the first group and another.

    Returns
    -------
    dict
        ``effect_mu``, ``effect_sigma`` (arrays over covariates) and ``group_difference``
        (list of specs over the non-reference groups), plus the set's other entries.

    Raises
    ------
    PriorError
        For an ``effect.<name>`` key naming no covariate of the study.
    """
    out = {k: v for k, v in priors.items() if not k.startswith("effect.")}
    for key in priors:
        if key.startswith("effect.") and key.split(".", 1)[1] not in design.covariates:
            raise PriorError(f"prior {key!r}: no covariate {key.split('.', 1)[1]!r} in the study (known: {', '.join(design.covariates)})")
    mus, sigmas = [], []
    claims = {a.covariate: a for a in study.associations.values()}
    for c in design.covariates:
        spec = dict(priors.get(f"effect.{c}", priors["effect"]))
        if spec.get("dist") != "normal":
            raise PriorError(f"prior effect.{c}: the effects take normal priors")
        mu = spec["mu"]
        if _is_claimed(mu):
            a = claims.get(c)
            if a is None or a.direction in (None, "none"):
                mu = 0.0
            elif a.relation == "~":
                mu = math.log1p(a.value / 100.0)
            else:
                mu = (-1.0 if a.direction == "lower" else 1.0) * spec.get("claimed_size", 0.2)
        mus.append(mu)
        sigmas.append(spec["sigma"])
    out["effect_mu"], out["effect_sigma"] = _vector(mus), _vector(sigmas)
    first = design.groups[0]
    diffs = []
    for g in design.groups[1:]:
        spec = {k: v for k, v in priors["group_difference"].items() if k != "claimed_size"}
        if _is_claimed(spec.get("mu")):
            spec["mu"] = 0.0
            for comp in study.comparisons.values():
                for cl in comp.claims.values():
                    if cl.statistic.startswith("ratio_of") and cl.value and set(comp.groups) == {first, g}:
                        sign = -1.0 if comp.groups[0] == first else 1.0
                        spec["mu"] = sign * math.log(cl.value)
        diffs.append(spec)
    out["group_difference"] = diffs
    return out


def _is_claimed(value) -> bool:
    return isinstance(value, str) and value == "claimed"


def _vector(values: list):
    """Prior parameters of several elements as one vector: a NumPy array for numbers, a
    stacked tensor when some are tensors (a sensitivity runner's shared prior values, so one
    compiled model serves every prior set of the same shape: reanalysis.analysis.build_keyed)."""
    if all(isinstance(v, (int, float, np.floating)) for v in values):
        return np.array(values, dtype=float)
    return pt.stack([pt.as_tensor_variable(v, dtype="float64") for v in values])


def log_ndtr(z):
    """``log Phi(z)`` for tensors, stable in the lower tail and differentiable everywhere.

    Written with ``erfc`` (accurate in double precision down to z = -20) and an asymptotic
    series below -20 (relative error < 1e-12 there), instead of PyMC's ``normal_lcdf``, whose
    ``erfcx`` has no JAX implementation.
    """
    zc = pt.maximum(z, -20.0)
    main = pt.log(0.5 * pt.erfc(-zc / math.sqrt(2.0)))
    zt = pt.minimum(z, -20.0)
    series = 1.0 - 1.0 / zt**2 + 3.0 / zt**4 - 15.0 / zt**6 + 105.0 / zt**8
    tail = -0.5 * zt**2 - pt.log(-zt) - 0.5 * math.log(2.0 * math.pi) + pt.log(series)
    return pt.switch(z < -20.0, tail, main)


def event_log_prob(kind: str, bounds, lcdf):
    """Log probability of a claim's event for an estimate ``E``, given ``lcdf = (lower,
    upper)`` with ``lower(x) = log P(E < x)`` and ``upper(x) = log P(E > x)``.

    ``kind``: ``interval`` (lo < E < hi), ``below`` (E < lo), ``above`` (E > lo), ``beyond``
    (|E| > lo).
    """
    lower, upper = lcdf
    lo, hi = bounds[0], bounds[-1]
    if kind == "interval":
        return interval_log_prob(lower(lo), lower(hi), upper(lo), upper(hi), lower(0.5 * (lo + hi)))
    if kind == "below":
        return lower(lo)
    if kind == "above":
        return upper(lo)
    if kind == "beyond":
        return pm.math.logaddexp(lower(-lo), upper(lo))
    raise ValueError(kind)


def interval_log_prob(lower_lo, lower_hi, upper_lo, upper_hi, lower_mid):
    """``log P(lo < E < hi)`` as the difference of the two tail probabilities on the side
    where they are small (the lower tails when the estimate is centred above the interval),
    so that it does not cancel to 0 far from the interval."""
    with_lower = _logdiffexp(lower_hi, lower_lo)
    with_upper = _logdiffexp(upper_lo, upper_hi)
    return pt.switch(lower_mid < math.log(0.5), with_lower, with_upper)


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0``, with finite gradients even at ``x = 0``.

    In JAX ``log1mexp`` is a ``where`` of two formulas, and both are differentiated: near 0
    the unused ``log1p(-exp(x))`` has an infinite derivative, and 0 times infinity made every
    gradient of the claims NaN (two of four chains stuck at their initial point).  Capping
    ``x`` at -1e-12 keeps that derivative finite (about -1e12); the price is a floor of
    ``log(1e-12) = -27.6`` on the log of a probability difference that cancels completely,
    e.g. a claim observed not to hold whose model probability of holding is above
    ``1 - 1e-12``.  (A hand-written two-sided version is rewritten back into ``log1mexp``
    by PyTensor.)"""
    return pt.log1mexp(pt.minimum(x, -1e-12))


def _logdiffexp(a, b):
    """``log(exp(a) - exp(b))`` for ``a > b``, finite (with finite gradients) even when the
    two cancel in floating point: both branches of a ``switch`` are differentiated, and an
    infinite gradient times 0 would be NaN."""
    return a + _log1mexp(b - a)


def claim_logp(value, held):
    """A claim observed to hold (``value`` 1) or not (0), given the log probability ``held``
    that it holds."""
    return pt.switch(value > 0.5, held, _log1mexp(held))


def declare_observed(terms: dict, ref: float = 1.0, width: float = 0.0) -> None:
    """Observed variables (in the model's context), in the order of ``terms`` (name -> (the
    tensors its log density reads, observed data, group or None for a claim)), with one
    :class:`models.deferred.DeferredGraph` of all their tensors as parameters.  A claim
    reads one tensor, the log probability that it holds (:func:`claim_logp`); a group's
    statistics read their mean and covariance (``ref`` and the rounding ``width`` set the
    rounding variance added from the observed values)."""
    names = list(terms)
    graph = DeferredGraph([t for name in names for t in terms[name][0]])
    at = np.cumsum([0] + [len(terms[name][0]) for name in names])
    for i, name in enumerate(names):
        _, observed, group = terms[name]
        if group is None:
            graph.observe(name, lambda value, outs, j=at[i]: claim_logp(value, outs[j]), observed)
            continue

        def logp(value, outs, j=at[i], kk=int(observed.get_value().shape[0])):
            mu, cov = outs[j], outs[j + 1]
            extra = rounding_variance_log(pt.exp(value) * ref, width) + ROUNDING_FLOOR
            # times the identity, not pt.diag: that is a graph-in-an-op, and folding it
            # (the observed values are constants to the sampler) compiled it on the C
            # backend, whose module cache took 7-10 s to load on every run
            return mvn_logp(pt, value, mu, cov + extra[..., None] * np.eye(kk), k=kk)

        graph.observe(name, logp, observed, like=observed, dims=f"statistic_{group}")


def claim_points(xp, bounds):
    """The points at which a claim's ``D`` is evaluated, ``(A, 4)``: its lower end ``lo``,
    upper end ``hi``, ``-lo`` (for "beyond") and the interval's midpoint."""
    lo, hi = bounds[:, 0], bounds[:, 1]
    return xp.stack([lo, hi, -lo, 0.5 * (lo + hi)], axis=-1)


def contract(xp, a, v):
    """``a`` contracted over its last axis with the first axis of ``v``: ``(a * v).sum(-1)``
    for a vector ``v``, as one dot product.  In the compiled gradient XLA runs a broadcast
    product and sum over 200 x 11 x 11 entries about 5 times slower than the dot product
    (``benchmarks/results/gradient-contractions-2026-12-08-s51.txt``)."""
    return xp.tensordot(a, v, axes=1)


def matvec(xp, a, v):
    """Batched matrix-vector products: ``a`` (..., m, n) times ``v`` (..., n), leading axes
    broadcast; ``(a * v[..., None, :]).sum(-1)`` as a dot product (see :func:`contract`)."""
    return xp.matmul(a, v[..., None])[..., 0]


def association_moments(xp, claims: dict, data: dict, y, var, influence=None):
    """Per claim, the normal approximation of the quantity ``D`` whose sign decides it, over
    random cohorts of the design, and its covariance with the groups' log statistics.

    Given one design cohort, a claim's least-squares coefficient ``b = P y`` is normal with
    mean ``P m`` and variance ``sum P^2 var`` (``m``: the subjects' expected log levels,
    ``var``: their residual variances).  A t statistic ``b / se`` divides by an estimated
    standard error; with ``se^2 = v E[RSS] / df`` (lack of fit included) and
    ``se_hat = se sqrt(W/df)``, ``W ~ chi2(df)``, the event ``T < x`` is
    ``D = x se_hat - b > 0``, approximately normal with mean ``x se (1 - 1/(4 df)) - P m`` and
    variance ``var_b + x^2 se^2 / (2 df)`` (the classical normal approximation to the
    noncentral t); for a coefficient claim ``D = x - b``.

    Over random cohorts of the design, ``D`` is approximately normal as well (a linear
    statistic of many subjects), with mean the average of the cohort means and variance the
    average within-cohort variance plus the between-cohort variance of the means, both
    estimated from the ``R`` design cohorts.  Averaging the ``R`` per-cohort probabilities
    instead made the claim likelihood a staircase at small residual scales (each cohort's
    probability a near-step function of the effects): the divergences of the first fits of
    this model sat there.  All claims are evaluated together on the padded subject layout.

    The covariance of ``D`` with a group's log statistics (``influence``) comes from the
    statistics' influence functions ``psi`` (:func:`group_influence`).  Within a design
    cohort the residuals drive it: ``Cov(b, log T) = sum_i P_i Cov(Z_i, psi(Y_i)) / n`` and
    ``Cov(RSS, log T) = sum_i ((1 - h_i) Cov((Z_i - m_i)^2, psi(Y_i)) + 2 r_i Cov(Z_i,
    psi(Y_i))) / n`` (``h``: leverage, ``r``: lack-of-fit residual of the expected levels;
    different subjects' residuals are independent), and ``Cov(se_hat, log T) = se / (2
    E[RSS]) Cov(RSS, log T)``.  Between cohorts the covariates drive it: a subject's
    covariates move the expected coefficient by ``P_i r_i`` (the influence function of least
    squares), the expected residual sum of squares by its own term ``E[RSS_i]`` and the
    statistic by ``E[psi(Y_i)] / n``; as the statistics' covariance treats the subjects as
    independent draws from the group's mixture, so does this part, summed over subjects
    rather than estimated from the ``R`` cohort means (with 5 cohorts that estimate was
    noise: correlations up to 0.5 of claims on one group with the other group's
    statistics).  Both parts are averaged over the design cohorts.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    claims : dict
        Constants of :func:`models.cohort.stack_claims` (``df``, ``kind``, ``t``).
    data : dict
        Its arrays ``X``, ``P``, ``v``, ``leverage``, ``mask``, ``bounds`` (tensors in the
        model: they depend on assumption values).
    y : array (R, S)
        Expected log levels of all subjects in every design cohort (``R >= 2``), padded
        layout ``S = G * n_max``.
    var : array (S,)
        Their residual variances.
    influence : list of tuple, optional
        Per group, ``(c1, c2, e)`` arrays (R, n_max, k_g): per subject ``Cov(Z, psi)``,
        ``Cov((Z - m)^2, psi)`` and ``E[psi]`` of the group's log statistics, divided by the
        group size (:func:`group_influence`).

    Returns
    -------
    mu, v : array (A, 4)
        Mean and variance of ``D`` at the claim's points ``lo``, ``hi``, ``-lo`` and the
        interval's midpoint.
    cross : list of array (A, 4, k_g) or None
        Per group, the covariance of ``D`` with its log statistics.
    """
    P, X, mask = data["P"], data["X"], data["mask"]
    b = matvec(xp, P, y[None])  # (A, R, p)
    mean = b[..., -1]
    weights_b = P[:, :, -1, :]  # (A, R, S)
    var_b = contract(xp, weights_b**2, var)
    # D at the claim's points, for every cohort at once: (A, R, 4)
    x = claim_points(xp, data["bounds"])[:, None, :]
    t = claims["t"][:, None]
    if claims["t"].any() or influence is not None:
        # lack-of-fit residuals of the expected log levels (zero outside the claim)
        fit_resid = mask[:, None, :] * (y[None] - matvec(xp, X, b))  # (A, R, S)
        rss_i = mask[:, None, :] * var * (1.0 - data["leverage"]) + fit_resid**2  # E[RSS] by subject
    if claims["t"].any():
        df = claims["df"][:, None]
        rss = rss_i.sum(axis=-1)
        se2 = data["v"] * rss / df
        a = t * xp.sqrt(se2) * (1.0 - 1.0 / (4.0 * df)) + (1.0 - t)
        d = t * se2 / (2.0 * df)
        loc, scale2 = x * a[..., None] - mean[..., None], var_b[..., None] + x**2 * d[..., None]
    else:
        loc, scale2 = x - mean[..., None], var_b[..., None] + 0.0 * x
    # over random cohorts: within- plus between-cohort variance (R - 1 denominator)
    R = loc.shape[1]
    mu = loc.mean(axis=1)
    v = scale2.mean(axis=1) + ((loc - mu[:, None, :]) ** 2).sum(axis=1) / (R - 1)  # (A, 4)
    if influence is None:
        return mu, v, None
    n_max = influence[0][0].shape[1]
    cross = []
    for k, (c1, c2, e) in enumerate(influence):
        sl = slice(k * n_max, (k + 1) * n_max)
        # the coefficient: within a cohort through the residuals, between cohorts through
        # the covariates (the influence of a subject on the expected coefficient is P_i r_i)
        cov_b = (weights_b[:, :, sl, None] * (c1[None] + fit_resid[:, :, sl, None] * e[None])).sum(axis=2)  # (A, R, k_g)
        cov_d = -cov_b[:, :, None, :]  # (A, R, 4, k_g)
        if claims["t"].any():
            # the residual sum of squares: within through the squared residuals and the
            # lack of fit, between through each subject's expected contribution
            lev = mask[:, None, sl] * (1.0 - data["leverage"][:, :, sl])
            cov_rss = (lev[..., None] * c2[None] + 2.0 * fit_resid[:, :, sl, None] * c1[None] + rss_i[:, :, sl, None] * e[None]).sum(axis=2)
            cov_se = (t * xp.sqrt(se2) / (2.0 * rss))[..., None] * cov_rss  # (A, R, k_g)
            cov_d = cov_d + x[..., None] * cov_se[:, :, None, :]
        cross.append(cov_d.mean(axis=1))
    return mu, v, cross


def claim_moments_over_cohorts(xp, claims: dict, forms: dict, theta, variance, t_cohorts: int | None = None, n_effects: int | None = None):
    """Mean and variance of each claim's ``D`` (:func:`association_moments`) over the many
    design cohorts summarised by :func:`models.cohort.claim_linear_forms`.

    ``D = x a_r - b_r`` in cohort ``r`` (``a_r = 1`` for a coefficient claim; for a t
    statistic ``a_r`` is the normal approximation's factor on the standard error
    ``se_r^2 = v_r (sum_g K_rg var_g + theta' Q_r theta) / df``).  Its mean over cohorts is
    ``x E[a] - E[B] theta``; its variance the average within-cohort variance
    (``sum_g W_g var_g``, plus ``x^2 E[se^2] / (2 df)`` for a t statistic) plus the
    between-cohort variance ``x^2 Var(a) - 2 x Cov(a, b) + theta' Cov(B) theta``: the
    decomposition :func:`association_moments` estimates from the mixture's few cohorts.

    Parameters
    ----------
    claims : dict
        :func:`models.cohort.stack_claims` (its ``bounds``, ``df``, ``t``).
    forms : dict
        :func:`models.cohort.claim_linear_forms`.
    theta : array (T,)
        Group-specific slopes (G * C, row-major) then the category effects (L).
    variance : array (G,)
        Residual variance of each group.
    t_cohorts : int, optional
        ``R_t``, when the forms are tensors: averages divide by this number rather than by
        a shape read from one of several equally shaped inputs (which one the graph reads
        varies between builds, and the compiled-model cache keys on the graph).
    n_effects : int, optional
        ``T``, when ``theta`` is a tensor whose length is not static (it indexes the packed
        quadratic forms ``Q``).

    Returns
    -------
    mu, v : array (A, 4)
        As :func:`association_moments`.
    """
    mean_b = contract(xp, forms["EB"], theta)  # (A,)
    between_b = (contract(xp, forms["CB"], theta) * theta).sum(axis=-1)
    within = contract(xp, forms["W"], variance)
    x = claim_points(xp, claims["bounds"])  # (A, 4)
    t = np.asarray(claims["t"])
    ma, va, cab, d = np.ones(len(t)), 0.0, 0.0, 0.0
    if t.any():
        df = np.asarray(claims["df"])[t > 0][:, None]
        # theta' Q_r theta from the packed triangles: one dot product with the effects'
        # pairwise products, taken through constant selections (no gather in the gradient)
        T = n_effects if n_effects is not None else np.shape(theta)[0]
        rows, cols = triangle(T)
        eye = np.eye(T)
        pairs = contract(xp, eye[rows], theta) * contract(xp, eye[cols], theta)
        lack = contract(xp, forms["Q"], pairs)  # (A_t, R_t)
        se2 = forms["v"] * (contract(xp, forms["K"], variance) + lack) / df
        n = float(t_cohorts if t_cohorts is not None else np.shape(forms["B"])[1])
        mean = lambda z: z.sum(axis=1) / n  # noqa: E731
        a = xp.sqrt(se2) * (1.0 - 1.0 / (4.0 * df))
        b = contract(xp, forms["B"], theta)
        am = mean(a)
        # from the t claims to all claims (a constant selection, no scatter in the gradient)
        E = np.eye(len(t))[:, t > 0]
        spread = lambda z: contract(xp, E, z)  # noqa: E731
        ma = (1.0 - t) + spread(am)
        va = spread(mean((a - am[:, None]) ** 2))[:, None]
        cab = spread(mean((a - am[:, None]) * (b - mean(b)[:, None])))[:, None]
        d = spread(mean(se2 / (2.0 * df)))[:, None]
    mu = x * ma[:, None] - mean_b[:, None]
    return mu, (within + between_b)[:, None] + x**2 * (d + va) - 2.0 * x * cab


def group_influence(xp, comp_m, comp_s, weights, names, sizes, nodes, sigma, shape):
    """Per group and design subject, the influence of its level on the group's log
    statistics (:func:`models.asymptotic.influence_covariances`), over the residual nodes of
    the scale mixture, divided by the group size: the ``influence`` of
    :func:`association_moments`.

    The residual scale mixture adds a between-node term to ``Cov((Z - m)^2, psi)`` (the node
    sets both the squared residual's mean and the statistic's expected influence); ``Z``'s
    mean is the same at every node, so ``Cov(Z, psi)`` has none.

    Parameters
    ----------
    comp_m, comp_s, weights : array (G, R * n_max * K)
        The mixture components of every group (the model's layout, nodes last).
    names : list of list of str
        Per group, its reported statistics.
    sizes : array (G,)
        Group sizes.
    nodes : array (K,)
        Residual variance multipliers (NumPy); ``sigma`` (G,) the residual scales.
    shape : tuple
        ``(R, n_max)``.

    Returns
    -------
    list of tuple of array (R, n_max, k_g)
    """
    R, n_max = shape
    n_nodes = len(nodes)
    # padding slots of the smaller groups carry no subject
    present = (np.arange(n_max)[None, :] < np.asarray(sizes)[:, None]).astype(float)[:, None, :, None]  # (G, 1, n_max, 1)
    union = [s for s in SUPPORTED if any(s in own for own in names)]
    c1, c2, e = influence_covariances(xp, comp_m, comp_s, union, w=weights)
    if n_nodes > 1:
        lay = (comp_m.shape[0], R, n_max, n_nodes, len(union))
        c1, c2, e = c1.reshape(lay), c2.reshape(lay), e.reshape(lay)
        s2 = (sigma[:, None] ** 2 * nodes[None, :])[:, None, None, :, None]  # (G, 1, 1, K, 1)
        c2 = (c2 + s2 * e).mean(axis=3) - s2.mean(axis=3) * e.mean(axis=3)
        c1, e = c1.mean(axis=3), e.mean(axis=3)
    else:
        # one node (normal residuals): nothing to average and no between-node term; skipped,
        # because every operation here is a kernel in each of the sampler's gradients
        lay = (comp_m.shape[0], R, n_max, len(union))
        c1, c2, e = c1.reshape(lay), c2.reshape(lay), e.reshape(lay)
    c1, c2, e = c1 * present, c2 * present, e * present
    out = []
    for k, own in enumerate(names):
        arrs = (c1[k], c2[k], e[k])
        cols = [union.index(s) for s in own]
        if cols != list(range(len(union))):
            pick = np.eye(len(union))[:, cols]  # a constant selection (no integer gather in the gradient)
            arrs = tuple(contract(xp, arr, pick) for arr in arrs)
        out.append(tuple(arr / sizes[k] for arr in arrs))
    return out


def condition_on_statistics(xp, mu, v, cross, stats, max_explained: float | None = None):
    """Condition each claim's ``D`` on the groups' published log statistics.

    With ``C_g`` the covariance of ``D`` with group ``g``'s log statistics ``s_g`` (normal
    with mean ``mu_g`` and covariance ``Sigma_g`` plus rounding noise, independent across
    groups)::

        mu | s = mu + sum_g C_g Sigma_g^-1 (s_g - mu_g),   v | s = v - sum_g C_g Sigma_g^-1 C_g'

    both through the unrolled Cholesky factor of each ``Sigma_g`` (a handful of scalar
    operations, as :func:`models.likelihood.mvn_logp`).  ``D``'s variance, its covariances
    and the statistics' covariance come from different approximations, so together they
    can claim that the statistics explain more of ``D`` than they can: where the explained
    share would exceed ``max_explained`` (:data:`MAX_EXPLAINED`), ``v`` is taken as the
    approximation that failed and raised to ``explained / max_explained`` (continuous in
    the parameters, and the conditional variance never collapses).

    Parameters
    ----------
    mu, v : array (A, 4)
    cross : list of array (A, 4, k_g)
    stats : list of tuple
        Per group ``(observed, mean, cov, k)``: log statistics (k_g,), their mean (k_g,) and
        covariance including the rounding variance (k_g, k_g), and ``k_g``.

    Returns
    -------
    mu, v : array (A, 4)
    """
    max_explained = MAX_EXPLAINED if max_explained is None else max_explained
    explained = 0.0
    for c, (obs, mean, cov, k) in zip(cross, stats):
        L = [[None] * k for _ in range(k)]
        for j in range(k):
            L[j][j] = xp.sqrt(cov[j, j] - sum((L[j][m] ** 2 for m in range(j)), 0.0))
            for i in range(j + 1, k):
                L[i][j] = (cov[i, j] - sum((L[i][m] * L[j][m] for m in range(j)), 0.0)) / L[j][j]
        r, w = [], []
        for i in range(k):
            r.append((obs[i] - mean[i] - sum((L[i][m] * r[m] for m in range(i)), 0.0)) / L[i][i])
            w.append((c[..., i] - sum((L[i][m] * w[m] for m in range(i)), 0.0)) / L[i][i])
        mu = mu + sum(wi * ri for wi, ri in zip(w, r))
        explained = explained + sum(wi**2 for wi in w)
    return mu, xp.maximum(v, explained / max_explained) - explained


def claim_event_log_prob(claims: dict, mu, v):
    """Log probability of each association claim's event from the normal ``D`` at its four
    points (:func:`association_moments`): an interval, a one-sided threshold or beyond."""
    z = mu / pt.sqrt(v)  # (A, 4)
    lower, upper = log_ndtr(z), log_ndtr(-z)  # log P(E < x), log P(E > x)
    by_kind = [
        interval_log_prob(lower[:, 0], lower[:, 1], upper[:, 0], upper[:, 1], lower[:, 3]),
        lower[:, 0],
        upper[:, 0],
        pm.math.logaddexp(lower[:, 2], upper[:, 0]),
    ]
    kind = claims["kind"]
    # each claim's own event; the others (finite, with finite gradients) get weight 0
    return sum(kind[:, j] * lp for j, lp in enumerate(by_kind) if kind[:, j].any())


def group_test_log_prob(cc, comps_a, comps_b, na: int, nb: int):
    """Log probability that the declared group test's statistic satisfies a comparison claim.

    ``comps_a``/``comps_b`` are ``(m, s, w)`` component arrays of the two groups'
    populations (locations, scales, weights summing to 1).  Welch/Student: the statistic is
    approximately normal with mean ``(mu_a - mu_b) / se`` and SD 1.  Mann-Whitney: its
    normal score has mean ``(A - 1/2) / sd0`` with ``A = P(X_a > X_b)`` (pairs of components)
    and ``sd0^2 = (na + nb + 1) / (12 na nb)``, and SD from Hanley & McNeil's (1982) variance
    of the area under the curve.
    """
    (ma, sa, wa), (mb, sb, wb) = comps_a, comps_b
    if cc["test"] in ("welch_t", "student_t"):
        (la, cva), (lb, cvb) = mixture_mean_cv2(pt, ma, sa, wa), mixture_mean_cv2(pt, mb, sb, wb)
        mua, mub = pt.exp(la), pt.exp(lb)
        va, vb = cva * mua**2, cvb * mub**2
        se_w = pt.sqrt(va / na + vb / nb)
        if cc["test"] == "welch_t":
            mean, sd = (mua - mub) / se_w, 1.0
        else:
            se = pt.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2) * (1.0 / na + 1.0 / nb))
            mean, sd = (mua - mub) / se, se_w / se
    elif cc["test"] == "mann_whitney":
        A = (wa[:, None] * wb[None, :] * ndtr(pt, (ma[:, None] - mb[None, :]) / pt.sqrt(sa[:, None] ** 2 + sb[None, :] ** 2))).sum()
        A = pt.clip(A, 1e-12, 1.0 - 1e-12)
        q1, q2 = A / (2.0 - A), 2.0 * A**2 / (1.0 + A)
        var_a = (A * (1.0 - A) + (na - 1) * (q1 - A**2) + (nb - 1) * (q2 - A**2)) / (na * nb)
        sd0 = math.sqrt((na + nb + 1) / (12.0 * na * nb))
        mean, sd = (A - 0.5) / sd0, pt.sqrt(pt.maximum(var_a, 1e-12)) / sd0
    else:
        raise ValueError(f"unknown group test {cc['test']!r}; use mann_whitney, welch_t or student_t")

    def lower(x):
        return log_ndtr((x - mean) / sd)

    def upper(x):
        return log_ndtr((mean - x) / sd)

    return event_log_prob(cc["kind"], cc["bounds"], (lower, upper))


def comparison_claims(study: Study) -> list[dict]:
    """Comparison claims entering the likelihood: p-value thresholds (two-sided, through the
    test the claim names, else the declared ``group_test``), unless the claim says
    ``use: check``; ratios of reported statistics are only checked."""
    from scipy import stats as sps

    out = []
    for cid, comp in study.comparisons.items():
        for k, cl in comp.claims.items():
            if cl.use == "check" or (cl.statistic in _REDUNDANT and all(_REDUNDANT[cl.statistic] in study.reported(g) for g in comp.groups)):
                continue
            if cl.statistic == "p_value" and cl.relation in ("<", "<="):
                test = cl.test or study.setting("group_test")
                out.append(
                    {"name": f"{cid}.{k}", "groups": comp.groups, "test": test, "kind": "beyond", "bounds": (float(sps.norm.isf(cl.value / 2)),)}
                )
    return out


def starting_point(reported: dict[str, dict[str, float]], design: Design, ref: float) -> dict:
    """Starting values from each group's fitted statistics (``reported``: group -> name ->
    value), by the group model's moment estimates (:func:`models.group.moment_estimates`):
    group levels at the medians (log levels are median-like) and residual SDs from the CV;
    every effect at 0."""
    lev, sig = [], []
    for g in design.groups:
        centre, cv = moment_estimates(reported[g], prefer="median")
        cv = 0.5 if cv is None else cv
        lev.append(math.log(centre / ref))
        sig.append(math.log(math.sqrt(math.log1p(cv**2))))
    return {"intercept": lev[0], "group_difference": np.array(lev[1:]) - lev[0], "log_sigma": np.array(sig)}


def set_starting_values(model: pm.Model, study: Study, data: dict) -> None:
    """Point ``model``'s initial values at the starting point of other observed statistics.

    :func:`build_model` starts chains from the study file's statistics.  Calibration fits
    simulated studies with one compiled model by swapping the observed data; each fit must
    start from its own study's statistics, as a fit of that study would, and not from the
    file's, which may lie far from its posterior.  ``data`` maps ``log_stats_<group>`` to
    the log fitted statistics (relative to ``reference_level``) in the study's order.
    """
    ref = float(study.assumption("reference_level", 1.0))
    reported = {
        g: dict(zip(fitted_statistics(study, g), np.exp(np.asarray(data[f"log_stats_{g}"], dtype=float)) * ref))
        for g in model.design.groups
    }
    start = starting_point(reported, model.design, ref)
    for name, value in start.items():
        if name in model.named_vars:  # one group: no group_difference
            model.rvs_to_initial_values[model[name]] = value


def _select(v, idx: list[int], size: int, matrix: bool = False):
    """Entries ``idx`` of a vector (or rows and columns of a matrix): a slice when they are
    contiguous, else a product with a constant selection matrix (the gradient of an integer
    gather runs through a slow Python operation)."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        sl = slice(idx[0], idx[0] + len(idx))
        return v[sl, sl] if matrix else v[sl]
    S = np.eye(size)[idx]
    if matrix:
        return (S[:, None, :, None] * v[None, None, :, :] * S[None, :, None, :]).sum(axis=(-1, -2))
    return (S * v[None, :]).sum(axis=-1)


def fitted_statistics(study: Study, group: str) -> dict[str, float]:
    """The published statistics of ``group`` the covariate model fits: those with a
    large-sample distribution over the covariate mixture (:data:`models.asymptotic.SUPPORTED`),
    in the study's order.  The others (extremes, SEM, IQR width, intervals, geometric means)
    are only checked against simulated cohorts."""
    return {k: v for k, v in study.reported(group).items() if k in SUPPORTED}


def study_problem(study: Study) -> str | None:
    """Why the covariate model cannot fit ``study`` (one line naming the field and the model
    that can), or None: every group needs a statistic it fits."""
    for g in study.group_ids:
        if not fitted_statistics(study, g):
            return (f"groups.{g}.statistics: the hierarchical model fits only {', '.join(SUPPORTED)} (a large-sample distribution), "
                    f"and this group reports {', '.join(study.reported(g))}; fit it with --model group")
    return None


def deviation_basis(defined: np.ndarray) -> np.ndarray:
    """(G, G - 1) orthonormal directions, all orthogonal to the mean over the groups where a
    covariate is ``defined`` (a (G,) boolean): the first ``n - 1`` span the deviations of
    those ``n`` groups from their mean, the rest are the other groups' own axes."""
    G = len(defined)
    inside, outside = np.flatnonzero(defined), np.flatnonzero(~defined)
    cols = [defined / math.sqrt(defined.sum())] + [np.eye(G)[g] for g in inside[:-1]] + [np.eye(G)[g] for g in outside]
    q, _ = np.linalg.qr(np.stack(cols, axis=1))
    return q[:, 1:]


def pooled_effects(design: Design, pooled: list[int], pr: dict):
    """The population effects and the groups' slopes, ``(effect (C,), slope (G, C))``.

    A pooled covariate's slopes are ``effect + spread * z`` with ``z`` standard normal per
    group, sampled through what the data inform: the mean slope over the groups where it
    is defined, ``slope_mean ~ normal(mu, sqrt(sigma^2 + spread^2 / n))``, the deviations from it
    (``effect_z``, standard normals along :func:`deviation_basis`) and the population
    effect given the mean slope (``effect_offset``, a standard normal; the effect is then
    the normal's conditional mean plus its conditional SD times it).  The joint prior is
    the same as the plain non-centred one, but the effect is no longer pinned to the mean
    slope where the spread is small (the neck the sampler diverged at)."""
    G, C = design.defined.shape
    mu, sigma = pr["effect_mu"], pr["effect_sigma"]
    single = [j for j in range(C) if j not in pooled]
    parts = {}
    if single:
        parts["single"] = pm.Normal("effect_single", mu=mu[np.asarray(single)], sigma=sigma[np.asarray(single)], dims="single_covariate")
    if pooled:
        spread = prior_variable("effect_spread", pr["effect_spread"], dims="pooled_covariate")
        n = design.defined[:, pooled].sum(axis=0).astype(float)
        mu_p, sigma_p = mu[np.asarray(pooled)], sigma[np.asarray(pooled)]
        between = spread**2 / n
        total = pt.sqrt(sigma_p**2 + between)
        mean = pm.Normal("slope_mean", mu=mu_p, sigma=total, dims="pooled_covariate")
        offset = pm.Normal("effect_offset", 0.0, 1.0, dims="pooled_covariate")
        z = pm.Normal("effect_z", 0.0, 1.0, dims=("deviation", "pooled_covariate"))
        parts["pooled"] = mu_p + sigma_p**2 / total**2 * (mean - mu_p) + sigma_p * pt.sqrt(between) / total * offset
        basis = np.stack([deviation_basis(design.defined[:, j]) for j in pooled], axis=-1)  # (G, G - 1, P)
        slope_pooled = mean[None, :] + spread[None, :] * (basis * z[None, :, :]).sum(axis=1)
    order = np.argsort(single + pooled)
    effect = pt.concatenate([parts[k] for k in ("single", "pooled") if k in parts])[order]
    effect = pm.Deterministic("effect", effect, dims="covariate")
    slope = pt.zeros((G, C)) + effect[None, :]
    if pooled:
        slope = pt.set_subtensor(slope[:, pooled], slope_pooled)
    return effect, slope


def build_model(study: Study, priors: dict, family: str = DEFAULT_FAMILY, reps: int = DEFAULT_REPS, seed: int = 20180302) -> pm.Model:
    """Build the hierarchical covariate model for ``study``.

    Parameters
    ----------
    study : Study
        Needs ``covariates``; uses every group's reported statistics, the modelled
        associations (:func:`models.cohort.modelled_associations`) and p-value claims.
    priors : dict
        Prior set for model ``"hierarchical"`` (:func:`models.priors.get_priors`).
    family : {"normal", "student_t"}
        Residual family on the log scale.
    reps : int
        Cohorts of the fixed design (the quadrature of the covariate distribution).
    seed : int
        Seed of the fixed design; part of the model definition.

    Returns
    -------
    pm.Model
        Free parameters ``intercept``, ``group_difference``, ``effect_single`` (covariates
        of one group), ``effect_spread``, ``slope_mean``, ``effect_offset``, ``effect_z``
        (pooled covariates, :func:`pooled_effects`), ``category_spread``, ``category_z``,
        ``log_sigma``; deterministics ``effect`` (every covariate), ``alpha``, ``slope``
        (group x covariate), ``sigma``, ``u``.  Observed: ``stats_<group>``
        (log statistics) and ``claim_<name>`` (1 when the claim holds).  Observed values are
        ``pm.Data``, so scenarios that change only values can swap them.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown residual family {family!r}; use one of: {', '.join(FAMILIES)}")
    if not study.covariates:
        raise ValueError(f"{study.id}: the hierarchical model needs 'covariates' in the study file")
    if reps < MIN_REPS:
        raise ValueError(f"reps={reps}: the covariate model needs at least {MIN_REPS} design cohorts (between-cohort variance of the claims)")
    design = build_design(study, reps, seed)
    pr = resolve_priors(study, priors, design)
    if family == "student_t" and "residual_df" not in pr:
        raise PriorError("the student_t family needs 'residual_df' ({'dist': 'fixed', 'value': ...}) in the prior set")
    df = float(pr["residual_df"]["value"]) if family == "student_t" else None
    nodes = residual_nodes(df)
    tau = float(nodes.mean())  # residual variance in units of sigma^2
    ref = float(study.assumption("reference_level", 1.0))
    width = rounding_width(study)
    G, C = len(design.groups), len(design.covariates)
    pooled = [j for j in range(C) if design.defined[:, j].sum() > 1]
    pooled_names = [design.covariates[j] for j in pooled]
    coords = {
        "group": list(design.groups),
        "contrast": list(design.groups[1:]),
        "covariate": list(design.covariates),
        "pooled_covariate": pooled_names,
        "single_covariate": [design.covariates[j] for j in range(C) if j not in pooled],
        "deviation": [str(k + 1) for k in range(G - 1)],
        "level": list(design.levels),
    }
    problem = study_problem(study)
    if problem:
        raise ValueError(problem)
    fitted = {g: fitted_statistics(study, g) for g in design.groups}
    for g in design.groups:
        coords[f"statistic_{g}"] = list(fitted[g])
    start = starting_point(fitted, design, ref)
    assoc = {name: claim_design(study, design, name, a) for name, a in modelled_associations(study).items()}
    # one correction table per group, all for the statistics any group reports, so the
    # groups' moments are one batched computation; each group then uses its own subset
    names = [s for s in SUPPORTED if any(s in fitted[g] for g in design.groups)]
    q_method = int(study.setting("quantile_method"))
    correction = stack_corrections([build_correction(nodes, study.n(g), names, seed=seed, quantile_method=q_method) for g in design.groups])
    claims = stack_claims(design, assoc.values()) if assoc else None
    if assoc:
        # the claims' means and variances over many more cohorts than the mixture's
        # (CLAIM_REPS); the same seed, so a scenario that changes an assumption value keeps
        # the same subjects
        many = build_design(study, CLAIM_REPS, seed)
        forms = claim_linear_forms(many, [claim_design(study, many, name, a) for name, a in modelled_associations(study).items()], t_reps=CLAIM_T_REPS)
    R, n_max = reps, design.n_max
    sizes = np.array([study.n(g) for g in design.groups], dtype=float)
    # component weights over the padded layout: equal within a group, 0 for padding
    weights = np.zeros((G, R, n_max, len(nodes)))
    for k, g in enumerate(design.groups):
        weights[k, :, : study.n(g)] = 1.0 / (R * study.n(g) * len(nodes))
    weights = weights.reshape((G, -1))

    with pm.Model(coords=coords) as model:
        # the design depends on assumption values (age spread, shares, ...), so it is data:
        # scenarios that change only those reuse the compiled model (reanalysis.analysis); it is
        # stored padded, (group, cohort, subject, covariate), so each group is one slice
        x = pm.Data("design_x", design.padded(design.x))
        onehot = pm.Data("design_levels", design.padded(design.onehot)) if design.levels else None
        intercept = prior_variable("intercept", pr["intercept"], initval=start["intercept"])
        if G > 1:
            gd = pm.Normal(
                "group_difference",
                mu=_vector([s["mu"] for s in pr["group_difference"]]),
                sigma=_vector([s["sigma"] for s in pr["group_difference"]]),
                dims="contrast",
                initval=start["group_difference"],
            )
            alpha = pm.Deterministic("alpha", intercept + pt.concatenate([pt.zeros(1), gd]), dims="group")
        else:
            alpha = pm.Deterministic("alpha", intercept + pt.zeros(1), dims="group")
        effect, slope = pooled_effects(design, pooled, pr)
        slope = pm.Deterministic("slope", slope * design.defined, dims=("group", "covariate"))
        if design.levels:
            cspread = prior_variable("category_spread", pr["category_spread"])
            cz = pm.Normal("category_z", 0.0, 1.0, dims="level")
            u = pm.Deterministic("u", cspread * cz, dims="level")
        log_sigma = prior_variable("log_sigma", pr["log_sigma"], dims="group", initval=start["log_sigma"])
        sigma = pm.Deterministic("sigma", pt.exp(log_sigma), dims="group")

        # expected log levels (no residual) of every subject in every design cohort, all
        # groups at once: (group, cohort, subject)
        m = alpha[:, None, None] + (x * slope[:, None, None, :]).sum(axis=-1)
        if design.levels:
            m = m + (onehot * u).sum(axis=-1)
        # mixture components: one per subject and residual-scale node
        comp_m = pt.repeat(m.reshape((G, -1)), len(nodes), axis=-1) if len(nodes) > 1 else m.reshape((G, -1))
        comp_s = pt.tile(sigma[:, None] * np.sqrt(nodes)[None, :], (1, R * n_max))
        mu, cov = corrected_moments(pt, correction, comp_m, comp_s, sizes, names, w=weights)

        stats = []  # per group: observed log statistics, their mean and covariance with rounding
        # observed variable -> (the tensors its log density reads, its observed data, its
        # group or None): declared at the end, with their parameters built inside their log
        # densities (models.deferred)
        observed_terms = {}
        for k, g in enumerate(design.groups):
            own = [names.index(s) for s in fitted[g]]
            observed = np.log(np.array(list(fitted[g].values())) / ref)
            mu_g, cov_g = _select(mu[k], own, len(names)), _select(cov[k], own, len(names), matrix=True)
            obs_g = pm.Data(f"log_stats_{g}", observed, dims=f"statistic_{g}")
            rounding = rounding_variance_log(pt.exp(obs_g) * ref, width) + ROUNDING_FLOOR
            stats.append((obs_g, mu_g, cov_g + rounding[:, None] * np.eye(len(own)), len(own)))
            observed_terms[f"stats_{g}"] = ([mu_g, cov_g], obs_g, g)

        variance = sigma**2 * tau  # (G,)
        if claims is not None:
            data = {f: pm.Data(f"claims_{f}", claims[f]) for f in ("X", "P", "v", "leverage", "mask", "bounds")}
            y = m.dimshuffle(1, 0, 2).reshape((R, G * n_max))
            var = pt.repeat(variance, n_max)
            # each claim conditioned on the published statistics of the same cohort
            # (docs/decisions/joint-claims.md); claims independent given them
            influence = group_influence(pt, comp_m, comp_s, weights, [list(fitted[g]) for g in design.groups], sizes, nodes, sigma, (R, n_max))
            _, _, cross = association_moments(pt, claims, data, y, var, influence)
            theta = slope.flatten()
            if design.levels:
                theta = pt.concatenate([theta, u])
            # the forms depend on assumption values (covariate distributions), so they are data
            forms_data = {f: pm.Data(f"claim_forms_{f}", forms[f]) for f in ("EB", "CB", "W") + (("B", "K", "Q", "v") if claims["t"].any() else ())}
            claim_mu, claim_v = claim_moments_over_cohorts(pt, {**claims, "bounds": data["bounds"]}, forms_data, theta, variance, t_cohorts=forms["B"].shape[1], n_effects=len(forms["EB"][0]))
            cond_mu, cond_v = condition_on_statistics(pt, claim_mu, claim_v, cross, stats)
            lp = claim_event_log_prob(claims, cond_mu, cond_v)
            # the claims' normal quantities, for tests that compare them with simulated cohorts
            model.claim_moments = {
                "mean": claim_mu, "var": claim_v, "cross": cross, "conditional_mean": cond_mu, "conditional_var": cond_v,
                "stats_mean": [st[1] for st in stats], "stats_cov": [st[2] for st in stats],
            }
            for a, name in enumerate(assoc):
                observed_terms[f"claim_{name}"] = ([lp[a]], pm.Data(f"claim_holds_{name}", 1.0), None)

        for cc in comparison_claims(study):
            ga, gb = cc["groups"]
            ka, kb = design.groups.index(ga), design.groups.index(gb)
            if cc["test"] == "mann_whitney":
                # every pair of components: TEST_REPS design cohorts keep it to n_a n_b pairs each
                comps = {
                    k: (m[k, :TEST_REPS, : study.n(g)].reshape((-1,)), pt.sqrt(variance[k]) * np.ones(TEST_REPS * study.n(g)), np.full(TEST_REPS * study.n(g), 1.0 / (TEST_REPS * study.n(g))))
                    for k, g in ((ka, ga), (kb, gb))
                }
            else:
                comps = {k: (comp_m[k], comp_s[k], weights[k]) for k in (ka, kb)}
            lp = group_test_log_prob(cc, comps[ka], comps[kb], study.n(ga), study.n(gb))
            safe = cc["name"].replace(".", "_")
            observed_terms[f"claim_{safe}"] = ([lp], pm.Data(f"claim_holds_{safe}", 1.0), None)
        declare_observed(observed_terms, ref, width)
    # kept for estimands and predictive checks (plain NumPy, no I/O)
    model.design, model.residual_df = design, df
    return model


# hooks of the analysis pipeline (reanalysis.analysis.model_api); imported last because
# models.effects needs nothing from this module but the shared cohort simulator
from .effects import add_estimands, estimand_table  # noqa: E402,F401
from .effects import predictive_cohorts as simulate_predictive  # noqa: E402,F401
