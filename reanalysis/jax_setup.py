"""JAX's settings for sampling, made by an explicit call (:func:`configure_jax`), never at import.

Standard library at import; JAX is imported by the call.  The toolkit calls it before it
builds or runs anything in JAX (:class:`reanalysis.sampling.CompiledNuts`, a fit of a model
sampled with JAX); a program that uses JAX itself before that (a test, a benchmark) calls
it first, because the device count is fixed once XLA's backend starts.
"""
from __future__ import annotations

import os

#: XLA CPU devices :func:`configure_jax` asks for: one per chain (up to 4, the default chain
#: count), so a single fit runs its chains on separate threads, that is on all cores
#: (``chain_method="parallel"``).  With one device the chains can only be vectorised on one core.
HOST_DEVICES = max(4, os.cpu_count() or 1)


def jax_cache_dir() -> str:
    """The persistent XLA compilation cache: a warm run reuses the compiled sampler of an
    earlier run of the same model structure instead of compiling it again (several seconds).
    ``K2_JAX_CACHE`` names another folder, or disables it when empty."""
    return os.environ.get("K2_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "k2-reanalysis", "jax"))


def configure_jax() -> None:
    """Set up JAX for sampling: double precision, :data:`HOST_DEVICES` CPU devices and the
    persistent compilation cache (:func:`jax_cache_dir`).

    The settings also go to the environment, so child processes inherit them; a value the
    user set in ``JAX_ENABLE_X64`` or ``JAX_NUM_CPU_DEVICES`` is kept.  Safe to call
    repeatedly.  Double precision matters for the Cholesky factors of the synthetic
    likelihood.
    """
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(HOST_DEVICES))
    import jax

    # JAX reads the variables once, at its import, which may have come first (PyTensor's JAX
    # dispatch imports it)
    x64 = os.environ["JAX_ENABLE_X64"].strip().lower() not in ("0", "false", "")
    if jax.config.jax_enable_x64 != x64:
        jax.config.update("jax_enable_x64", x64)
    if jax.config.jax_num_cpu_devices < 0:
        try:
            jax.config.update("jax_num_cpu_devices", int(os.environ["JAX_NUM_CPU_DEVICES"]))
        except RuntimeError:
            pass  # the backend is up: parallel chains fall back to vectorised ones

    cache = jax_cache_dir()
    if cache and not jax.config.jax_compilation_cache_dir:
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError:
            return  # an unwritable home only costs compile time
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
