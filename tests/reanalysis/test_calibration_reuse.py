"""A calibration worker process builds the model and compiles the sampler once, for its first
chunk, and reuses them for the chunks it runs next; another calibration (other settings, or
the study file changed on disk) builds again and replaces them.

Fast tier, with a stand-in for the model and the sampler (what is cached, not how it
samples); the slow tier's cluster test checks on real fits that each worker process that
ran a chunk compiled once (tests/reanalysis/test_cluster.py)."""
from __future__ import annotations

import shutil

import pytest

from reanalysis import calibration
from tests.scriptruns import ROOT


class _Builds:
    """Counts the models built and the samplers compiled."""

    def __init__(self):
        self.models, self.samplers = 0, 0


@pytest.fixture
def builds(monkeypatch):
    count = _Builds()

    class Api:
        def build_model(self, study, priors, **kw):
            count.models += 1
            return object()

        def nuts_options(self):
            return {}

    class Runner:
        def __init__(self, model, data_names, **kw):
            count.samplers += 1
            self.model, self.data_names, self.kw = model, data_names, kw

    import reanalysis.analysis

    monkeypatch.setattr(reanalysis.analysis, "model_api", lambda name: Api())
    monkeypatch.setattr(calibration, "CompiledNuts", Runner)
    monkeypatch.setattr(calibration, "_WORKER_SAMPLER", {})
    return count


def _setup(path, **changes) -> dict:
    setup = dict(study_path=str(path), priors={"log_mean": {"dist": "normal", "mu": 0.0, "sigma": 3.0}}, family="lognormal",
                 seed=1, draws=500, tune=500, chains=4, model="group", precomputed={})
    return {**setup, **changes}


def test_the_chunks_of_one_calibration_share_one_build_and_one_compile(builds, tmp_path):
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "data" / "studies" / "lasemi2018.yaml", study)
    first = calibration._worker_sampler(_setup(study), ["obs"])
    for _ in range(3):  # the next chunks of the same calibration
        assert calibration._worker_sampler(_setup(study), ["obs"]) is first
    assert (builds.models, builds.samplers) == (1, 1)
    assert first[2].kw["draws"] == 500 and first[2].data_names == ["obs"]


@pytest.mark.parametrize(
    "change", [{"draws": 250}, {"tune": 250}, {"chains": 2}, {"seed": 2}, {"family": "gamma"}, {"model": "hierarchical"},
               {"priors": {"log_mean": {"dist": "normal", "mu": 0.0, "sigma": 1.0}}}],
)
def test_another_calibration_builds_again_and_only_the_last_is_kept(builds, tmp_path, change):
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "data" / "studies" / "lasemi2018.yaml", study)
    first = calibration._worker_sampler(_setup(study), ["obs"])
    other = calibration._worker_sampler(_setup(study, **change), ["obs"])
    assert other is not first and (builds.models, builds.samplers) == (2, 2)
    assert len(calibration._WORKER_SAMPLER) == 1  # a long-lived worker holds one sampler


def test_a_study_file_changed_on_disk_is_built_again(builds, tmp_path):
    """A cluster worker outlives a command: the same path with other contents is another study."""
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "data" / "studies" / "lasemi2018.yaml", study)
    first = calibration._worker_sampler(_setup(study), ["obs"])
    study.write_text(study.read_text() + "\n# edited\n")
    assert calibration._worker_sampler(_setup(study), ["obs"]) is not first
    assert builds.models == 2


def test_each_calibration_fit_starts_from_its_own_simulated_statistics(monkeypatch, tmp_path):
    # a fit started from the study file's numbers instead can leave one chain in a minor
    # mode far from the simulated study's posterior (benchmarks/README.md, "Covariate-model
    # calibration from each study's own start"); every model is asked, before each run
    events = []

    class Model:
        named_vars_to_dims, coords, start = {}, {}, None

    class Api:
        def build_model(self, study, priors, **kw):
            return Model()

        def nuts_options(self):
            return {}

        def set_starting_values(self, model, study, priors, data):
            model.start = data["obs"]

    class Stop(Exception):
        pass

    class Runner:
        def __init__(self, model, data_names, **kw):
            self.model = model

        def run(self, seed, data):
            events.append((self.model.start, data["obs"]))
            raise Stop

    import reanalysis.analysis

    monkeypatch.setattr(reanalysis.analysis, "model_api", lambda name: Api())
    monkeypatch.setattr(calibration, "CompiledNuts", Runner)
    monkeypatch.setattr(calibration, "_WORKER_SAMPLER", {})
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "data" / "studies" / "lasemi2018.yaml", study)
    for model in ("group", "hierarchical"):
        for obs in (1.5, -2.0):
            task = {"sim": 0, "truth": {"mu": 0.0}, "data": {"obs": obs}, "reported": {}}
            with pytest.raises(Stop):
                calibration._fit_studies(_setup(study, model=model), [task], {})
    assert events == [(1.5, 1.5), (-2.0, -2.0)] * 2
