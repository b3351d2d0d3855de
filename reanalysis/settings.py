"""The toolkit's defaults and exit codes, defined once for the command line and the Python API.

Standard library only: the command line reads these to answer ``--help`` without importing
PyMC.  The models' own defaults (draws, warm-up, simulated cohorts, family) belong to each
model (:mod:`reanalysis.registry`); the values here are the run's.
"""
from __future__ import annotations

from pathlib import Path

#: The folder holding the ``models`` and ``reanalysis`` packages (a checkout, or the
#: project folder of an editable install).
ROOT = Path(__file__).resolve().parents[1]
#: The study a run reanalyses when none is named.
DEFAULT_STUDY = ROOT / "data" / "studies" / "lasemi2018.yaml"
#: Random seed of a whole run: sampler, likelihood deviates and predictive checks.
DEFAULT_SEED = 20180302
#: Chains per fit (R-hat compares chains: at least 2).
DEFAULT_CHAINS = 4
MIN_CHAINS = 2
#: Posterior draws used for the predictive checks.
DEFAULT_PPC_DRAWS = 2000
#: Prior draws of the sampled parameters kept with a fit (prior-versus-posterior figure,
#: contraction).
DEFAULT_PRIOR_DRAWS = 2000
#: Thresholds of a trustworthy run (Vehtari et al. 2021, rank-normalised R-hat and ESS):
#: the gate of :func:`reanalysis.diagnostics.check_diagnostics`.
MAX_RHAT = 1.01
MIN_ESS = 400
MAX_DIVERGENCES = 0
#: Bulk and tail ESS at which a fit that may continue its chains stops drawing more
#: (reanalysis.analysis.extend_draws): the gate's MIN_ESS plus a quarter, because an ESS
#: estimate is itself noisy, and a rule that stopped as soon as the estimate crossed 400
#: would often stop at a true ESS below it.
TARGET_ESS = 500
#: Named prior set of a run.
DEFAULT_PRIORS = "default"

# -- exit codes of the command-line tools ---------------------------------------------------
#: Success.
EXIT_OK = 0
#: An unexpected error (a bug, or a failure outside the input's control).
EXIT_ERROR = 1
#: Bad input: a study, grid or result file, or an option; nothing is run or written.
EXIT_INPUT = 2
#: fit: the sampler diagnostics failed (results are written, marked as failed).
EXIT_DIAGNOSTICS = 3
#: sensitivity: some scenarios failed (the others are complete and written).
EXIT_FAILED = 3
#: readme-results: the README's generated block is out of date (``--check``).
EXIT_STALE = 3
#: sbc: the calibration found the model miscalibrated.
EXIT_MISCALIBRATED = 4
#: Interrupted (Ctrl-C): 128 + SIGINT; nothing is written.
EXIT_INTERRUPTED = 130
