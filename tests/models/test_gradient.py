"""The gradient barrier keeps its meaning after the graph is rewritten and converted to JAX
(the covariate model's sampler differentiates the converted graph with JAX)."""
from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from models.asymptotic import quantile_log
from models.gradient import stop_gradient
from reanalysis.sampling import rewrite_for_jax  # also sets JAX's double precision before JAX starts
# PyTensor's side on the Python linker without rewrites: the meaning of the barrier does not
# depend on the backend, and the C backend compiles a module per operation when the cache is cold
from tests.compile_modes import UNOPTIMISED


def _jax_function(inputs, output):
    """``output`` as a JAX function of ``inputs``, through the rewrites the sampler applies."""
    from pytensor.link.jax.dispatch import jax_funcify

    fn = jax_funcify(rewrite_for_jax(inputs, [output]))
    return lambda *a: fn(*a)[0]


def test_value_unchanged_and_no_gradient_in_pytensor():
    x = pt.dvector("x")
    y = (stop_gradient(x) ** 2 + x).sum()
    f = pytensor.function([x], [y, pt.grad(y, x)], mode=UNOPTIMISED)
    value, grad = f(np.array([1.5, -2.0]))
    assert value == pytest.approx(1.5**2 + 2.0**2 + 1.5 - 2.0)
    np.testing.assert_array_equal(grad, [1.0, 1.0])


def test_survives_the_jax_rewrites():
    import jax

    x = pt.dvector("x")
    fn = _jax_function([x], (stop_gradient(x) ** 2 + x).sum())
    value, grad = jax.value_and_grad(fn)(np.array([1.5, -2.0]))
    assert float(value) == pytest.approx(1.5**2 + 2.0**2 + 1.5 - 2.0)
    # differentiated through the barrier this would be 2 x + 1 = (4, -3)
    np.testing.assert_array_equal(np.asarray(grad), [1.0, 1.0])


# the inputs are vectors of unknown length, so PyTensor guards the broadcast with a runtime
# assertion that JAX cannot trace (the model's graphs have static shapes)
@pytest.mark.filterwarnings("ignore:Skipping Assert:UserWarning")
def test_quantile_gradient_in_jax_is_the_last_newton_step_only():
    """With 2 Newton steps on a bimodal mixture the root is not converged, so a gradient
    taken through both steps differs from the one of the last step from a constant start
    (PyTensor's, whose derivative is checked by finite differences in test_asymptotic.py)."""
    import jax

    rng = np.random.default_rng(3)
    m0 = np.concatenate([rng.normal(-2.0, 0.2, 20), rng.normal(2.0, 0.2, 20)])
    s0 = np.full(40, 0.3)
    m, s = pt.dvector("m"), pt.dvector("s")
    y = quantile_log(pt, m, s, 0.4, steps=2)
    want_m, want_s = pytensor.function([m, s], pt.grad(y, [m, s]), mode=UNOPTIMISED)(m0, s0)
    got_m, got_s = jax.grad(_jax_function([m, s], y), argnums=(0, 1))(m0, s0)
    # not converged: a full Newton step from here still moves the root
    assert abs(quantile_log(np, m0, s0, 0.4, steps=8) - quantile_log(np, m0, s0, 0.4, steps=2)) > 1e-3
    np.testing.assert_allclose(np.asarray(got_m), want_m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got_s), want_s, rtol=1e-10, atol=1e-12)
