"""Image folders registered by name, kept in the run store so every page and every session of
this server offers them.

    <store>/.datasets/registry.json   {"version": 1, "folders": {name: absolute path}}
    <store>/.datasets/<name>/          a folder extracted from an uploaded zip (vizcore.views.archives)

A registered folder trains as ``folder:PATH`` (the domain the CLI reads too); its name is what
runs and pages show (``TrainConfig.data_names``). The file is written atomically and validated
on every read: a damaged or hand-edited registry is reported in one line and read as empty, so it
never hides the bundled data sets; an entry that is not a valid name and path is dropped and named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vizcore.core.atomic import write_json_atomic
from vizcore.core.config import TrainConfig

DATASETS_DIR = ".datasets"  # hidden: no listing of runs reads it (run ids start with a letter or digit)
REGISTRY_FILE = "registry.json"
REGISTRY_VERSION = 1
# a name shown in pickers and used as a folder name for an extracted zip: no separators, no dots first
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
FOLDER_PREFIX = "folder:"  # vizcore.data.sources.folders.FOLDER_PREFIX, not imported (that brings torch)


class DatasetNameError(ValueError):
    """A name that cannot be registered; the message says what a name may be."""


def check_name(name: object) -> str:
    """``name`` stripped, if it is 1-48 letters, digits, '-' or '_' starting with a letter or digit."""
    text = name.strip() if isinstance(name, str) else ""
    if not NAME_PATTERN.fullmatch(text):
        raise DatasetNameError(
            f"{name!r} is not a data set name: use 1-48 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return text


@dataclass(frozen=True)
class Registered:
    """The registry as read: name -> folder, and what was wrong with the file (None: nothing)."""

    folders: dict[str, Path]
    problem: str | None = None

    def domain(self, name: str) -> str:
        """The domain a registered name trains as: ``folder:<absolute path>``."""
        return f"{FOLDER_PREFIX}{self.folders[name]}"

    @property
    def names(self) -> dict[str, str]:
        """``folder:PATH`` -> registered name (``TrainConfig.data_names`` of a run on them)."""
        return {self.domain(n): n for n in self.folders}


def datasets_dir(store_root: Path) -> Path:
    return Path(store_root) / DATASETS_DIR


def registry_path(store_root: Path) -> Path:
    return datasets_dir(store_root) / REGISTRY_FILE


def _entries(obj: object) -> tuple[dict[str, Path], list[str]]:
    """The valid (name, absolute path) entries of a parsed registry, and the reasons others were dropped."""
    if not isinstance(obj, dict) or obj.get("version") != REGISTRY_VERSION or not isinstance(obj.get("folders"), dict):
        raise ValueError(f"it is not a version-{REGISTRY_VERSION} registry (an object with a 'folders' map)")
    good, dropped = {}, []
    for name, path in obj["folders"].items():
        try:
            key = check_name(name)
        except DatasetNameError:
            dropped.append(f"{name!r} (not a valid name)")
            continue
        if not isinstance(path, str) or not Path(path).is_absolute():
            dropped.append(f"{key} (its path {path!r} is not an absolute path)")
            continue
        good[key] = Path(path)
    return good, dropped


def read_registry(store_root: Path) -> Registered:
    """The registered folders; never raises for a missing, unreadable or damaged file."""
    path = registry_path(store_root)
    if not path.exists():
        return Registered({})
    try:
        folders, dropped = _entries(json.loads(path.read_bytes()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        return Registered({}, f"the registry of your folders, {path}, cannot be read and is ignored: {e}")
    if dropped:
        return Registered(folders, f"{path}: entries left out: {', '.join(dropped)}")
    return Registered(folders)


def register_folder(store_root: Path, name: str, folder: Path) -> Registered:
    """Add ``name`` -> ``folder`` and write the registry atomically (a name is never moved to
    another folder: a run recorded it as that folder's).

    The folder must exist; whether it holds usable images is the inspection's to say
    (:mod:`vizcore.views.datasets`). A damaged registry is replaced by a valid one holding this
    entry (its unreadable content was ignored on every read anyway).

    Raises:
        DatasetNameError: a name that is not valid, or taken by another folder.
        ValueError: the folder does not exist.
        StoreWriteError: the store cannot be written.
    """
    key = check_name(name)
    from vizcore.data.domains import list_domains  # torch comes with it: not for a plain read

    if key in list_domains():
        raise DatasetNameError(f"{key!r} is a bundled data set; choose another name")
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder on this server")
    folders = read_registry(store_root).folders
    if folders.get(key, path) != path:
        raise DatasetNameError(f"{key!r} is the name of {folders[key]} already; choose another name")
    folders = {**folders, key: path}
    _write(store_root, folders)
    return Registered(folders)


def forget_folder(store_root: Path, name: str) -> Registered:
    """Remove ``name`` from the registry; its images are left where they are."""
    folders = {k: v for k, v in read_registry(store_root).folders.items() if k != name}
    _write(store_root, folders)
    return Registered(folders)


def _write(store_root: Path, folders: dict[str, Path]) -> None:
    body = {"version": REGISTRY_VERSION, "folders": {k: str(v) for k, v in sorted(folders.items())}}
    write_json_atomic(registry_path(store_root), body)


def registered_domain(store_root: Path, name: str | None) -> str | None:
    """``folder:PATH`` for a registered name (``--data pets`` on the command line), else ``name``."""
    folders = read_registry(store_root).folders
    return f"{FOLDER_PREFIX}{folders[name]}" if name in folders else name


def with_registered_names(cfg: TrainConfig, store_root: Path) -> TrainConfig:
    """``cfg`` with the names of its registered folders in ``data_names`` (unless it names them
    already), so a run started anywhere shows them as the Train page's runs do."""
    names = read_registry(store_root).names
    shown = {d: names[d] for d in (cfg.source, cfg.target) if d in names}
    return cfg.replace(data_names=shown) if shown and not cfg.data_names else cfg
