"""A gradient barrier that survives the conversion of a PyTensor graph to JAX.

PyTensor's own ``disconnected_grad`` is a ``ViewOp``: PyTensor's gradient stops there, but
the rewrites for JAX remove every ``ViewOp`` (``local_view_op``), so when JAX differentiates
the converted graph (the covariate model's sampler does) it differentiates straight through.
For the mixture quantiles' Newton iterations that meant back-propagating through all of
them: about 27 fused XLA kernels per iteration in the gradient instead of about 8
(2026-12-02).  :func:`stop_gradient` is an identity whose gradient is disconnected in
PyTensor and which JAX evaluates as ``jax.lax.stop_gradient``.
"""
from __future__ import annotations

# Importing PyTensor's JAX dispatch imports JAX but configures nothing: double precision and
# the device count are set by the toolkit before it samples (reanalysis.sampling.configure_jax).
from pytensor.compile.ops import TypeCastingOp
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.link.jax.dispatch import jax_funcify


class StopGradient(TypeCastingOp):
    """Identity on values, no gradient (PyTensor and JAX).  Not a ``ViewOp``, so no rewrite
    removes it; its C code is the view copy PyTensor registers for its types."""

    def make_node(self, x):
        return Apply(self, [x], [x.type()])

    def infer_shape(self, fgraph, node, input_shapes):
        return input_shapes

    def grad(self, inputs, output_grads):
        return [disconnected_type()]

    def connection_pattern(self, node):
        return [[False]]

    def R_op(self, inputs, eval_points):
        return [None]


_stop_gradient = StopGradient()


def stop_gradient(x):
    """``x``, treated as a constant by PyTensor's and JAX's gradients.

    Parameters
    ----------
    x : TensorVariable

    Returns
    -------
    TensorVariable
        Same value, type and shape as ``x``.
    """
    return _stop_gradient(x)


@jax_funcify.register(StopGradient)
def _jax_stop_gradient(op, **kwargs):
    import jax

    return jax.lax.stop_gradient
