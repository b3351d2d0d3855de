"""Tests for reanalysis.disk_cache: entries survive between runs, a damaged or foreign entry is
rebuilt, and the group model's likelihood tables come from the store on the next build."""
from __future__ import annotations

import numpy as np
import pytest

from models import group
from models.study import load_study
from reanalysis import disk_cache
from reanalysis.disk_cache import DiskStore
from reanalysis.registry import get_model


def test_a_stored_value_is_read_back_and_the_folder_keeps_the_newest(tmp_path):
    store = DiskStore(str(tmp_path), keep=2)
    for i in range(3):
        store.put(("key", i), {"value": i})
    assert store.get(("key", 2)) == {"value": 2}
    assert store.get(("key", 0)) is None  # the oldest went
    assert len(list(tmp_path.glob("*.pkl"))) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_a_truncated_entry_counts_as_absent(tmp_path):
    store = DiskStore(str(tmp_path))
    store.put("k", list(range(1000)))
    (entry,) = tmp_path.glob("*.pkl")
    entry.write_bytes(entry.read_bytes()[:20])
    assert store.get("k") is None


def test_other_model_code_never_reads_an_entry(tmp_path):
    """The digest includes the models package's source: an entry written by other code
    (another salt) is not found."""
    store = DiskStore(str(tmp_path))
    store.put("k", 1)
    other = DiskStore(str(tmp_path))
    other._salt = "code of another version"
    assert other.get("k") is None
    assert DiskStore(str(tmp_path)).get("k") == 1


def test_a_disabled_or_unwritable_store_only_costs_the_rebuild(tmp_path):
    off = DiskStore("")
    off.put("k", 1)
    assert off.get("k") is None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    disk_cache.store(str(blocked / "sub"), "d", 1, keep=3)  # no exception
    assert disk_cache.load(str(blocked / "sub"), "d") is None


def test_the_group_models_tables_come_from_the_store_on_the_next_run(study_path, tmp_path, monkeypatch):
    study = load_study(study_path)
    api = get_model("group")
    store = DiskStore(str(tmp_path))
    monkeypatch.setattr(group, "_TABLES", {})
    first = api.precomputed(study, "lognormal", 20, 1, store=store)["tables"]
    assert len(list(tmp_path.glob("*.pkl"))) == 1

    # a new run: nothing in memory, and building would fail
    monkeypatch.setattr(group, "_TABLES", {})

    def no_build(*a, **k):
        raise AssertionError("the table was built again")

    monkeypatch.setattr(group, "build_rounded_table", no_build)
    monkeypatch.setattr(group, "build_table", no_build)
    again = api.precomputed(study, "lognormal", 20, 1, store=store)["tables"]
    assert len(again) == len(first)
    for a, b in zip(first, again):
        for name, value in vars(a).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, getattr(b, name))
    # another family or seed is another entry
    with pytest.raises(AssertionError, match="built again"):
        api.precomputed(study, "lognormal", 20, 2, store=store)


def test_a_model_without_precomputed_options_gets_none(study_path):
    assert get_model("hierarchical").precomputed(load_study(study_path), "normal", 5, 1, store=DiskStore("")) == {}
