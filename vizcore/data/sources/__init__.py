"""The sources of ``DOMAINS``, one module each: the bundled digit sets (``digits``), ``mnist-m``,
``printed-digits`` (``printed``), the torchvision sets and ``folder:<path>`` (a prefix, resolved by name).

``vizcore.data`` imports this package, so the registry is filled before any domain is loaded.
To add a source, write its loader and its :class:`~vizcore.data.domains.DomainSpec` in a module
here and register the spec below (or a :class:`~vizcore.data.domains.PrefixSource` for a family
of names resolved when used).
"""

from __future__ import annotations

from vizcore.data.domains import DOMAINS
from vizcore.data.sources import digits, folders, mnist_m, printed, torchvision_sets

# registration order is the order the selectboxes list them in
for _spec in (
    digits.MNIST,
    digits.CLUTTERED_MNIST,
    mnist_m.MNIST_M,
    digits.UCI_DIGITS,
    printed.PRINTED_DIGITS,
    *torchvision_sets.SPECS,
):
    DOMAINS.add(_spec.name, _spec)
DOMAINS.register_prefix(folders.FOLDER_PREFIX, folders.FOLDERS)
