"""Pickled results kept on disk between runs: the log density's rewritten graphs
(:mod:`reanalysis.sampling`) and the group model's likelihood tables (:class:`DiskStore`).

An entry is written whole to a temporary file and then renamed, so a concurrent reader sees
the old entry or the new one, never half of one; an entry that cannot be read (absent,
truncated, written by another version) counts as absent and is rebuilt; a folder that cannot
be written only costs the rebuild next time.  The folder keeps the most recently written
entries.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path

#: Parent folder of the caches; each has a sub-folder and an environment variable of its own.
CACHE_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "k2-reanalysis")


def load(folder: str, digest: str):
    """The object stored under ``digest`` in ``folder``, or None."""
    try:
        with open(os.path.join(folder, f"{digest}.pkl"), "rb") as fh:
            return pickle.load(fh)
    except Exception:  # noqa: BLE001 - absent, truncated or from another version: rebuild
        return None


def store(folder: str, digest: str, obj, keep: int) -> None:
    """Write ``obj`` under ``digest`` in ``folder`` and remove all but the ``keep`` newest entries."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=folder, suffix=".tmp", delete=False) as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(fh.name, os.path.join(folder, f"{digest}.pkl"))
        entries = sorted((e for e in os.scandir(folder) if e.name.endswith(".pkl")), key=lambda e: e.stat().st_mtime)
        for old in entries[:-keep]:
            os.remove(old.path)
    except OSError:
        pass


#: Folder of the likelihood tables (K2_TABLE_CACHE; an empty string disables it).
TABLE_CACHE_DIR = os.environ.get("K2_TABLE_CACHE", os.path.join(CACHE_ROOT, "tables"))
#: Tables the folder keeps.  A group's table is 1-30 MB (the rounded tables are the large
#: ones), a study has a few groups and each family has its own.
TABLE_CACHE_ENTRIES = 64
#: Packages whose numbers the tables depend on (random streams, special functions).
TABLE_PACKAGES = ("numpy", "scipy")


class DiskStore:
    """A key-value store of a model's precomputed inputs (:meth:`models.interface.Model.precomputed`).

    A key is any value with a stable ``repr`` (tuples of names and numbers).  The digest under
    which it is kept adds the source of the ``models`` package and the versions of
    :data:`TABLE_PACKAGES`, so an entry is never read by code that would build it otherwise.
    """

    def __init__(self, folder: str | None = None, keep: int = TABLE_CACHE_ENTRIES):
        self.folder = TABLE_CACHE_DIR if folder is None else folder
        self.keep = keep
        self._salt: str | None = None

    def _digest(self, key) -> str:
        if self._salt is None:
            import models

            from reanalysis.results import package_versions

            h = hashlib.sha256()
            root = Path(models.__file__).resolve().parent
            for path in sorted(root.rglob("*.py")):
                h.update(path.relative_to(root).as_posix().encode() + b"\x00" + path.read_bytes())
            h.update(json.dumps(package_versions(TABLE_PACKAGES), sort_keys=True).encode())
            self._salt = h.hexdigest()
        return hashlib.sha256(f"{self._salt}:{key!r}".encode()).hexdigest()

    def get(self, key):
        """The stored value of ``key``, or None (also when the store is disabled)."""
        return load(self.folder, self._digest(key)) if self.folder else None

    def put(self, key, value) -> None:
        """Keep ``value`` under ``key`` (nothing when the store is disabled)."""
        if self.folder:
            store(self.folder, self._digest(key), value, self.keep)
