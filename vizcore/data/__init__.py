"""Domains (bundled digits, generated shifts, torchvision sets, image folders) and the feeds that batch them."""

from vizcore.data import sources  # noqa: F401  (fills the DOMAINS registry)
