"""Shared pytest fixtures."""
from pathlib import Path

import pytest
import yaml

_TESTS_DIR = Path(__file__).resolve().parent


# --- study files (tests/test_study.py) ---------------------------------------------------
@pytest.fixture
def study_path() -> Path:
    """Path of the real study file data/studies/lasemi2018.yaml."""
    return (_TESTS_DIR.parent / "data" / "studies" / "lasemi2018.yaml").resolve()


@pytest.fixture
def base(study_path) -> dict:
    """A fresh, mutable copy of the real study file as plain YAML data."""
    return yaml.safe_load(study_path.read_text(encoding="utf-8"))


@pytest.fixture
def write_study(tmp_path):
    """Factory: ``write_study(data, name="study.yaml") -> Path`` dumps ``data`` as YAML."""

    def _write(data, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return _write


# --- model tests ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single_threaded_blas():
    """The gradients solve small triangular systems with matrix right-hand sides;
    multi-threaded OpenBLAS makes each take milliseconds instead of microseconds when the
    CPUs are busy.  Use with ``pytestmark = pytest.mark.usefixtures("single_threaded_blas")``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
