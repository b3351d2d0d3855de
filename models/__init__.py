"""Bayesian reanalysis of published summary statistics.

Modules, one role each: ``study`` (schema and loading), ``families`` (population
distributions), ``statistics`` (published-statistic functions), ``simulate`` (cohort
simulator), ``likelihood`` (synthetic likelihood), ``priors`` (named prior sets), ``group``
(the group model builder), ``cohort`` (covariate design and claim statistics),
``hierarchical`` (the covariate model builder), ``effects`` (its estimands and predictive
cohorts), ``analysis`` (the fit pipeline), ``sampling`` (NUTS backend), ``estimands``,
``checks`` (posterior predictive checks), ``diagnostics``, ``informativeness`` (contraction
and power-scaling sensitivity), ``evidence`` (Bayes factors), ``plots``, ``figure_workers``
(figures drawn in worker processes), ``gradient`` (a gradient barrier for graphs converted to
JAX), ``results`` (result folders and manifests), ``calibration`` (simulation-based calibration), ``sensitivity``
(scenario grids) and ``sensitivity_plots``, ``plausibility`` (external reference ranges),
``report`` (self-contained HTML report).
"""
import logging as _logging
import warnings as _warnings

# Keep library chatter out of user-facing output: ArviZ 0.23 announces its refactor on
# import, and pip-installed PyTensor warns that it found no BLAS (the sampler runs on JAX).
_warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
_warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
_logging.getLogger("pytensor.tensor.blas").setLevel(_logging.ERROR)
