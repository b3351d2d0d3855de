"""Figures drawn in worker processes: saved under their names, timed, and a failure names
the figure without leaving the pool hanging."""
from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from reanalysis.figures.workers import DPI, FigureWorkers, draw


def _idata():
    rng = np.random.default_rng(0)
    return az.from_dict(posterior={"a": rng.normal(size=(2, 50)), "b": rng.normal(size=(2, 50))})


def test_workers_save_each_figure_and_time_it(tmp_path):
    idata = _idata()
    with FigureWorkers(workers=2) as pool:
        pool.submit("ranks.png", "rank_figure", idata, ["a", "b"], folder=tmp_path)
        pool.submit("ranks_a.png", "rank_figure", idata, ["a"], folder=tmp_path)
        names = pool.results()
    assert names == ["ranks.png", "ranks.svg", "ranks_a.png", "ranks_a.svg"]
    for name in names[::2]:
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        # the resolution recorded in the PNG (pixels per metre) is print quality
        at = png.index(b"pHYs") + 4
        assert round(int.from_bytes(png[at:at + 4], "big") * 0.0254) == DPI >= 300
    for name in names[1::2]:
        assert b"<svg" in (tmp_path / name).read_bytes()[:2000]
    assert set(pool.seconds) == set(names[::2]) and all(v > 0 for v in pool.seconds.values())


def test_a_failing_figure_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="figure broken.png: KeyError"):
        with FigureWorkers(workers=1) as pool:
            pool.submit("broken.png", "rank_figure", _idata(), ["no_such_variable"], folder=tmp_path)
            pool.results()
    assert not (tmp_path / "broken.png").exists()


def test_draw_in_process_is_the_same_function(tmp_path):
    seconds = draw("rank_figure", (_idata(), ["a"]), tmp_path / "r.png")
    assert seconds > 0 and (tmp_path / "r.png").stat().st_size > 1000


def test_the_same_figure_gives_the_same_vector_file(tmp_path):
    """No date and no random element ids in the SVG: a rerun of a fit rewrites its figures
    byte for byte."""
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        draw("rank_figure", (_idata(), ["a"]), tmp_path / folder / "r.png")
    one, two = ((tmp_path / f / "r.svg").read_bytes() for f in ("one", "two"))
    assert one == two and b"<dc:date>" not in one
