"""The data sets a page offers: the bundled ones and the folders registered in the store, each
with the name shown for it and, when it cannot be read on this machine, why.

A registered folder is offered as ``folder:<path>`` (what trains, and what the CLI takes) and shown
by its registered name; a run records that name (``TrainConfig.data_names``), so every page shows
it too. A torchvision set that is not on the machine can be downloaded only with a network: the
probe says whether one answers, once per process, and the page shows the reason when none does.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from vizcore.data.domains import domain_info, list_domains, load_domain, unavailable_reason
from vizcore.store.datasets import read_registry

# where torchvision fetches MNIST, Fashion-MNIST, USPS and SVHN from; any one answering will do
DOWNLOAD_HOSTS = (("ossci-datasets.s3.amazonaws.com", 443), ("ufldl.stanford.edu", 80))
PROBE_TIMEOUT_S = 2.0
OFFLINE_ENV = "VIZCORE_OFFLINE"  # "1": never probe (an air-gapped server; the test suite)


@dataclass(frozen=True)
class DataChoice:
    """One data set a picker offers.

    Attributes:
        domain: What trains: a registered name of DOMAINS, or ``folder:<path>``.
        shown: The name a picker shows (a registered folder's own name).
        missing: Why it cannot be read here (None: it can).
        downloadable: A torchvision set, which torchvision can fetch given a network.
    """

    domain: str
    shown: str
    missing: str | None
    downloadable: bool = False

    @property
    def label(self) -> str:
        return f"{self.shown} (not on this machine)" if self.missing else self.shown


def data_choices(store_root: Path) -> tuple[list[DataChoice], str | None]:
    """The bundled data sets, then the registered folders; and what was wrong with the registry
    file, if anything (the bundled sets are offered whatever it holds)."""
    bundled = [DataChoice(d, d, unavailable_reason(d), not domain_info(d).offline) for d in list_domains()]
    registered = read_registry(store_root)
    folders = [DataChoice(registered.domain(n), n, unavailable_reason(registered.domain(n)))
               for n in registered.folders]  # fmt: skip
    return bundled + folders, registered.problem


def choice_rows(choices: list[DataChoice]) -> list[dict[str, str]]:
    """One row per data set for a table: its name, what it is, whether it is here and why not."""
    def kind(c: DataChoice) -> str:
        return "your folder" if c.domain.startswith("folder:") else "torchvision" if c.downloadable else "bundled"

    return [{"data set": c.shown, "kind": kind(c), "here": "no" if c.missing else "yes", "why not": c.missing or ""}
            for c in choices]  # fmt: skip


def shown_names(choices: list[DataChoice], *domains: str | None) -> dict[str, str]:
    """``TrainConfig.data_names`` for a run on ``domains``: the registered ones, by their names."""
    by_domain = {c.domain: c.shown for c in choices}
    return {d: by_domain[d] for d in domains if d is not None and by_domain.get(d, d) != d}


@functools.lru_cache(maxsize=1)
def network_reason() -> str | None:
    """Why nothing can be downloaded from here (None: a download host answers). Asked once per process."""
    if os.environ.get(OFFLINE_ENV, "").strip() in ("1", "true", "yes"):
        return f"this server is set to work offline (${OFFLINE_ENV}), so it cannot be downloaded here"
    last = "no download host is known"
    for host, port in DOWNLOAD_HOSTS:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                return None
        except OSError as e:
            last = f"{host}:{port} does not answer ({e})"
    return f"there is no network connection from this server ({last}), so it cannot be downloaded here"


def download(choice: DataChoice) -> None:
    """Fetch a torchvision set's both splits into the data root; DataUnavailable says why not."""
    for split in ("train", "test"):
        load_domain(choice.domain, split, download=True)
