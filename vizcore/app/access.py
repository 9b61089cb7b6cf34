"""Who may do what on the dashboard: which pages exist, and whether a visitor must give a token.

The server listens on 127.0.0.1 (``.streamlit/config.toml``): only this machine reaches it, and
everything is on. A presenter who serves it to the group on a network address chooses one of:

* ``VIZCORE_VIEWER=1`` (or ``streamlit run app.py -- --viewer``): a read-only viewer, without the
  Train, Your data, Upload and Deck pages and without any button that writes to the run store;
* ``VIZCORE_TOKEN=<secret>``: every visitor types the token before any page is shown.

Both may be set (a viewer behind a token). A network address with neither gets the read-only
pages and a note on how to set a token. The viewer flag applies on 127.0.0.1 as well.

No Streamlit here: ``app.py`` asks these functions and draws the answer.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

VIEWER_ENV = "VIZCORE_VIEWER"
VIEWER_FLAG = "--viewer"  # after the script's own "--": streamlit run app.py -- --viewer
TOKEN_ENV = "VIZCORE_TOKEN"
_YES = frozenset({"1", "true", "yes", "on"})
# pages that write to the run store: the Train page starts runs, the Upload page saves checkpoints,
# the Your data page extracts zips and registers folders (and reads any folder of the server), the Deck
# page reorders, annotates and removes pinned items (kept in the store)
WRITING_PAGES = frozenset({"train", "upload", "data", "deck"})
NO_TOKEN_NOTICE = (
    f"Served on a network address without a token, so only the read-only pages are on: Train, "
    f"Your data, Upload and every button that writes are off. To turn them on for the group, restart with "
    f"`{TOKEN_ENV}=<a secret> streamlit run app.py --server.address 0.0.0.0` and give the group the "
    f"secret; to share read-only on purpose (and drop this note), set `{VIEWER_ENV}=1`."
)


@dataclass(frozen=True)
class Access:
    """What this server offers.

    Attributes:
        writable: the Train, Your data, Upload and Deck pages and the buttons that write to the run store are on.
        token: what a visitor must type before any page is shown; None: nothing is asked.
        notice: why writable pages are off and how to turn them on; None: nothing to say.
    """

    writable: bool
    token: str | None = None
    notice: str | None = None


def viewer_mode(env: Mapping[str, str] | None = None, argv: Sequence[str] = ()) -> bool:
    """Is the read-only viewer asked for, by ``$VIZCORE_VIEWER`` (1/true/yes/on) or ``--viewer``?"""
    env = os.environ if env is None else env
    return env.get(VIEWER_ENV, "").strip().lower() in _YES or VIEWER_FLAG in argv


def is_loopback(address: str | None) -> bool:
    """Does a server bound to ``address`` answer this machine only? Unset or empty binds every
    interface (Streamlit's default), so it does not; a host name other than localhost is not
    trusted to be one."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def access_for(env: Mapping[str, str], address: str | None, argv: Sequence[str] = ()) -> Access:
    """What a server bound to ``address`` offers, given the environment and the script's arguments."""
    viewer = viewer_mode(env, argv)
    if is_loopback(address):
        return Access(writable=not viewer)
    token = env.get(TOKEN_ENV, "").strip() or None
    if token is not None:
        return Access(writable=not viewer, token=token)
    return Access(writable=False, notice=None if viewer else NO_TOKEN_NOTICE)


def page_allowed(path: str, access: Access) -> bool:
    """Does the page at ``path`` (``pages/train.py``, or a page's ``__file__``) exist under ``access``?"""
    return access.writable or Path(path).stem not in WRITING_PAGES


def token_matches(given: str, token: str) -> bool:
    """Compare in constant time, so the time taken does not tell how much of a guess was right."""
    return hmac.compare_digest(given.strip().encode(), token.encode())
