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


#: Compilation in this process: sampler programs traced (:mod:`reanalysis.nuts_chains`), and
#: XLA executables obtained (compiled, or read from the persistent cache), counted from
#: JAX's own monitoring events once :func:`configure_jax` has run.
COUNTS = {"sampler_programs": 0, "xla_executables": 0, "xla_from_cache": 0, "xla_seconds": 0.0}
_LISTENING = []


def compile_counts(since: dict | None = None) -> dict:
    """A copy of :data:`COUNTS`, or its increase since an earlier copy ``since``; with
    ``xla_compiled``, the executables XLA compiled (obtained minus read from the cache)."""
    now = dict(COUNTS)
    if since is not None:
        now = {k: v - since.get(k, 0) for k, v in now.items()}
    now["xla_compiled"] = now["xla_executables"] - now["xla_from_cache"]
    now["xla_seconds"] = round(now["xla_seconds"], 3)
    return now


def _listen_to_compiles() -> None:
    if _LISTENING:
        return
    from jax import monitoring

    def on_duration(event: str, seconds: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            COUNTS["xla_executables"] += 1
            COUNTS["xla_seconds"] += seconds

    def on_event(event: str, **kwargs) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            COUNTS["xla_from_cache"] += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    _LISTENING.append(True)


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
    _listen_to_compiles()
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
        # every executable, however quick to compile: at JAX's default (1 s) or 0.5 s a warm
        # group grid still compiled 47 small ones (19-25 s); at 0 it compiles none
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
