"""Figures drawn and saved in worker processes while the caller goes on.

A fit's figures took 6-9 s drawn one after another in the fitting process, on one core.
Drawn by two worker processes, they overlap each other and the writing of the result
tables.  The workers are forked when the pool is created, which the caller does before
JAX starts (``fit.py``: right after reading the study file): they then share no sampler
threads, which a ``fork`` after JAX has started would copy in an undefined state, and they
inherit the caller's imports (matplotlib, ArviZ).  When JAX is already running the workers
are spawned instead and import :mod:`reanalysis.figures.plots` themselves.  Workers draw, never sample.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
from pathlib import Path

#: Worker processes (fewer on a machine with fewer cores).
WORKERS = 2
#: Resolution of the saved PNG figures: print quality at the figures' page width (6.3 in,
#: 1890 pixels).  Every figure is also saved as SVG (:data:`VECTOR_FORMAT`) for manuscripts.
DPI = 300
#: Vector format saved beside each PNG (same name, this suffix).
VECTOR_FORMAT = "svg"


#: Salt of the element ids matplotlib writes into an SVG (random by default).
VECTOR_SALT = "k2-reanalysis"


def vector_name(name: str) -> str:
    """File name of the vector copy of the PNG figure ``name``."""
    return str(Path(name).with_suffix(f".{VECTOR_FORMAT}"))


def _prepare() -> None:
    # Ctrl-C is the caller's to handle: in a process run from a terminal it reaches the whole
    # process group, and the caller stops the workers and removes the unfinished result
    # folder (under reanalysis.supervisor the supervisor kills the group instead)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from reanalysis.figures import plots  # noqa: F401 (imported once per worker, before any figure is asked for)


def _draw_pickled(job: bytes, path: str, dpi: int) -> float:
    builder, args = pickle.loads(job)
    return draw(builder, args, path, dpi)


def draw(builder: str, args: tuple, path: str | Path, dpi: int = DPI) -> float:
    """Draw ``reanalysis.figures.plots.<builder>(*args)``, save it to ``path`` (PNG at ``dpi``) and
    beside it as SVG (:func:`vector_name`), and return the seconds that took."""
    from reanalysis.figures import plots

    t = time.perf_counter()
    fig = getattr(plots, builder)(*args)
    try:
        fig.savefig(path, dpi=dpi)
        # the same figure gives the same file: no date, and element ids from a fixed salt
        with plots.plt.rc_context({"svg.hashsalt": VECTOR_SALT}):
            fig.savefig(vector_name(str(path)), format=VECTOR_FORMAT, metadata={"Date": None})
    finally:
        plots.plt.close(fig)
    return time.perf_counter() - t


class FigureWorkers:
    """A pool of figure workers; a context manager that stops them on exit (at once on an
    error or Ctrl-C).

    Parameters
    ----------
    workers : int, optional
        Worker processes (default :data:`WORKERS`, at most the number of CPUs).

    Examples
    --------
    >>> with FigureWorkers() as pool:                       # doctest: +SKIP
    ...     pool.submit("rank_plots.png", "rank_figure", idata, names, folder=out)
    ...     written = pool.results()
    """

    def __init__(self, workers: int | None = None):
        n = max(1, min(workers or WORKERS, os.cpu_count() or 1))
        ctx = multiprocessing.get_context("spawn" if "jax" in sys.modules else "fork")
        self._pool = ctx.Pool(n, initializer=_prepare)
        self._jobs: list = []
        #: Seconds each saved figure took in its worker (drawing and saving), by name.
        self.seconds: dict[str, float] = {}

    def submit(self, name: str, builder: str, *args, folder: Path, dpi: int = DPI) -> None:
        """Draw ``reanalysis.figures.plots.<builder>(*args)`` in a worker and save it as ``folder / name``.

        The arguments are pickled here, so the caller may change them afterwards (the pool
        sends its tasks from a thread of its own); submit the slowest figures first."""
        job = pickle.dumps((builder, args), protocol=pickle.HIGHEST_PROTOCOL)
        self._jobs.append((name, self._pool.apply_async(_draw_pickled, (job, str(Path(folder) / name), dpi))))

    def results(self) -> list[str]:
        """Names of the figures submitted so far, once all are saved (each PNG followed by
        its vector copy).

        Raises
        ------
        RuntimeError
            Naming the first figure that failed, with its error.
        """
        jobs, self._jobs = self._jobs, []
        for name, job in jobs:
            try:
                self.seconds[name] = job.get()
            except Exception as exc:  # noqa: BLE001 - re-raised with the figure's name
                raise RuntimeError(f"figure {name}: {type(exc).__name__}: {exc}") from exc
        return [f for name, _ in jobs for f in (name, vector_name(name))]

    def close(self, error: bool = False) -> None:
        """Stop the workers: after their figures, or at once with ``error``."""
        if error:
            self._pool.terminate()
        else:
            self._pool.close()
        self._pool.join()

    def __enter__(self) -> FigureWorkers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(error=exc_type is not None)


class InlineFigures:
    """The interface of :class:`FigureWorkers` drawing each figure in this process, at once
    (:meth:`reanalysis.api.Fit.save` without a pool: a notebook needs no worker processes)."""

    def __init__(self):
        self._names: list[str] = []
        #: Seconds each saved figure took (drawing and saving), by name.
        self.seconds: dict[str, float] = {}

    def submit(self, name: str, builder: str, *args, folder: Path, dpi: int = DPI) -> None:
        """Draw ``reanalysis.figures.plots.<builder>(*args)`` now and save it as ``folder / name``."""
        try:
            self.seconds[name] = draw(builder, args, Path(folder) / name, dpi)
        except Exception as exc:  # noqa: BLE001 - re-raised with the figure's name, as FigureWorkers does
            raise RuntimeError(f"figure {name}: {type(exc).__name__}: {exc}") from exc
        self._names.append(name)

    def results(self) -> list[str]:
        """Names of the figures saved so far (each PNG followed by its vector copy)."""
        names, self._names = self._names, []
        return [f for name in names for f in (name, vector_name(name))]
