"""What a statistical model gives the toolkit: the interface every registered model implements.

A model is a subclass of :class:`Model` in a module of its own, registered by name in
:data:`reanalysis.registry.MODELS` (one line).  The toolkit's pipeline
(:func:`reanalysis.analysis.run_analysis`) builds it, samples it with the sampler it names,
adds its estimands, simulates predictive cohorts and compares their statistics with the
published ones, without any model-specific code of its own.

The settings are class attributes, read by the command line from the source without
importing the model (:mod:`reanalysis.model_facts`): give them as literals, as names of
literal constants of the model's modules, or leave the defaults below.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping


class Model(ABC):
    """One statistical model of a study's published summary statistics.

    Attributes
    ----------
    name : str
        Registry name (``--model``).
    families : mapping
        Family name -> its one-line description (or an object with a ``description``).
    default_family : str
        The family of a fit that names none.
    default_reps : int
        Simulated cohorts per likelihood evaluation (``--reps``); ``min_reps`` the fewest.
    default_draws, default_tune : int
        Kept draws and warm-up iterations per chain of a default fit.
    max_draws : int or None
        Most draws per chain a fit may extend to (the ESS stopping rule; JAX sampler only).
    target_accept : float
        NUTS target acceptance.
    sampler : {"pymc", "jax"}
        PyMC's NUTS on the C backend, or NumPyro's NUTS on the log density compiled to JAX.
    warmup_tree_depth : int or None
        Tree-depth cap during warm-up (JAX sampler only).
    parameter_scales : mapping
        Sampled parameter -> the scale it lives on, in words (prior-versus-posterior figure).
    prior_sets : mapping or None
        The model's named prior sets (None: :data:`models.priors.PRIOR_SETS`).
    """

    name: ClassVar[str]
    families: ClassVar[Mapping[str, Any]]
    default_family: ClassVar[str]
    default_reps: ClassVar[int]
    min_reps: ClassVar[int] = 2
    default_draws: ClassVar[int] = 1000
    max_draws: ClassVar[int | None] = None
    default_tune: ClassVar[int] = 1000
    target_accept: ClassVar[float] = 0.8
    sampler: ClassVar[str] = "pymc"
    warmup_tree_depth: ClassVar[int | None] = None
    parameter_scales: ClassVar[Mapping[str, str]] = {}
    #: Named prior sets, set name -> parameter -> ``{"dist": ..., **parameters}``; None: the
    #: model's entry of :data:`models.priors.PRIOR_SETS`.
    prior_sets: ClassVar[Mapping[str, dict] | None] = None

    @property
    def extends(self) -> bool:
        """Whether a fit can continue its chains for more draws (the JAX runner can)."""
        return self.sampler == "jax"

    def nuts_options(self) -> dict:
        """The model's own settings of :class:`reanalysis.sampling.CompiledNuts`."""
        return {"target_accept": self.target_accept, "warmup_tree_depth": self.warmup_tree_depth}

    def get_priors(self, name: str = "default", overrides: dict | None = None) -> dict:
        """A copy of prior set ``name`` with ``overrides`` merged in (:func:`models.priors.get_priors`).

        Raises
        ------
        models.priors.PriorError
            An unknown set or parameter.
        """
        from .priors import get_priors

        return get_priors(self.name, name, overrides, sets=self.prior_sets)

    def prior_set_names(self) -> list[str]:
        """Names of the model's prior sets (its own :attr:`prior_sets`, or its entry of
        :data:`models.priors.PRIOR_SETS`)."""
        from .priors import PRIOR_SETS

        return list(self.prior_sets if self.prior_sets is not None else PRIOR_SETS.get(self.name, {}))

    @staticmethod
    def given(**settings) -> dict:
        """The settings that are not None (for passing on to a builder with defaults of its own)."""
        return {k: v for k, v in settings.items() if v is not None}

    def family_descriptions(self) -> dict[str, str]:
        """Family name -> one-line description."""
        return {k: getattr(v, "description", v) for k, v in self.families.items()}

    @abstractmethod
    def build_model(self, study, priors: dict, family: str | None = None, reps: int | None = None, seed: int | None = None, **options):
        """The PyMC model of ``study`` with prior set ``priors`` (plain numbers, or PyTensor
        shared scalars for a compiled cache), population ``family``, ``reps`` simulated
        cohorts per evaluation and the likelihood's fixed deviates drawn from ``seed`` (None:
        the model's defaults).  ``options``: keywords of the model's own builder (the group
        model's precomputed likelihood ``tables`` in calibration workers)."""

    def study_problem(self, study) -> str | None:
        """Why this model cannot fit ``study`` (one line naming the study file's field and the
        model that can), or None; checked before anything is built or sampled.  The default
        accepts every study."""
        return None

    def set_starting_values(self, model, study, priors: dict, data: dict) -> None:
        """Point ``model``'s initial values at what a fit of other observed ``data`` (the
        names and values a compiled sampler swaps in) would start from: calibration fits
        simulated studies with one model built for the study file, and each must start as
        that study's own fit would.  The default keeps the model's own initial values, which
        suits a model whose start does not depend on the data."""

    def precomputed(self, study, family: str | None = None, reps: int | None = None, seed: int | None = None, store=None) -> dict:
        """Options of :meth:`build_model` that cost time to compute and depend on the design
        only (the group model's likelihood tables), so a caller computes them once for many
        builds and ``store`` (``get(key)`` / ``put(key, value)``, or None) keeps them between
        runs.  The default has none."""
        return {}

    @abstractmethod
    def add_estimands(self, idata, study, family: str, model) -> None:
        """Add the estimands to ``idata.posterior``, draw by draw (in place); ``model`` is the
        PyMC model the draws came from."""

    @abstractmethod
    def estimand_table(self, idata, study):
        """One row per estimand: posterior median, 95% HDI and diagnostics (a DataFrame as
        :func:`models.estimands.estimand_table` returns it)."""

    @abstractmethod
    def predictive_cohorts(self, idata, study, family: str, n_draws: int, seed: int, model) -> dict:
        """Simulated cohorts of the published sizes, one per (thinned) posterior draw:
        group id -> array (draws, n), plus ``association.*`` entries of a covariate model."""

    @abstractmethod
    def predictive_statistics(self, cohorts: dict, study) -> dict:
        """Every published statistic and claim computed on ``cohorts``."""

    @abstractmethod
    def check_table(self, pstats: dict, study):
        """The predictive checks against every published number: a DataFrame with the columns
        :data:`models.checks.COLUMNS` (:func:`models.checks.number_row` builds the row of a
        published number); the pipeline refuses a table without them."""

    def item_roles(self, study, family: str):
        """The rule that gives each published item of ``study`` its role in this model
        (``published_items.csv``): a callable ``(item, checked) -> (role, reason)`` as
        described in :mod:`models.published_roles`.  The default fits nothing it knows of:
        an item the checks table has is a ``check``, any other ``unused``; a model that fits
        published numbers overrides it."""
        from .published_roles import not_fitted

        def role(item: dict, checked: bool) -> tuple[str, str]:
            return not_fitted(item, checked, f"the {self.name} model does not declare what it fits")

        return role

    def covariate_view(self, idata, study, model, seed: int):
        """Level-versus-covariate view of a covariate model (predictive cohorts and
        regression lines, :func:`models.effects.covariate_view`), or None."""
        return None
