"""PyTensor compile modes of the tests that evaluate model graphs on PyTensor's side."""
from __future__ import annotations

import pytensor

#: The graph as built, run node by node on the Python linker: no graph rewrites and no C
#: module.  The values do not depend on the backend; what a test pays for is compilation,
#: and rewriting was most of it (the group model's log density and gradient: 9.7 s with
#: the ``fast_compile`` rewrites, 4.5 s without, the same values to 1e-12 and the same
#: evaluation time).  Without rewrites there are also no fused operations, on which the
#: Python linker fails (``'Scratchpad' object has no attribute 'ufunc'``).
UNOPTIMISED = pytensor.compile.mode.Mode(linker="py", optimizer=None)

#: The Python linker after the ``fast_compile`` rewrites: for a graph evaluated at many
#: points, where the rewritten graph's faster evaluation repays its longer compilation (the
#: covariate model's terms: its test file took 45 s this way and 63 s unoptimised).
PY_REWRITTEN = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")
