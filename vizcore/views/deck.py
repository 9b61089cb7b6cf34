"""A deck: the figures and tables a researcher pinned while exploring, kept for the group meeting.

A deck is a list of recorded specs (DESIGN.md, section 6). Each item keeps what it shows (kind,
title, caption, the run it came from by id and given name, the settings) and how to make it again:
the name of a registered figure builder (:mod:`vizcore.views.builders`) with its inputs. Beside it
a snapshot (plotly JSON, or a table's cells) is kept, so every item can be exported even when no
builder re-makes it (a run since deleted, a figure without a builder).

One deck per browser user, in the run store (``<store>/.decks/<user>.json``, snapshots in
``<store>/.decks/<user>/``), so a reload loses nothing. Every write is atomic; every read is
validated: a damaged deck file is moved aside (never overwritten), named in one message, and the
deck starts empty; a damaged snapshot marks its own item only.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vizcore.core.atomic import write_json_atomic

DECK_VERSION = 1
KINDS = ("figure", "table")
USER_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ITEM_PATTERN = re.compile(r"[a-f0-9]{12}")
DECKS_DIR = ".decks"


class DeckError(ValueError):
    """A deck file or item that cannot be read or written; the message names the file and why."""


@dataclass(frozen=True)
class DeckItem:
    """One pinned figure or table.

    Attributes:
        kind: "figure" or "table".
        title: the slide title (the figure's own title, or the table's heading).
        caption: the sentence shown below it on the page; below it on the slide.
        run_id, run_name: the run it came from (None for a figure of several runs or none).
        settings: the widget choices it was made with, as shown to people ({"metric": "MMD", ...}).
        spec: how to make it again: {"builder": name, "inputs": {...}}, or None (snapshot only).
        notes: the presenter's notes (slide notes in the PowerPoint).
    """

    item_id: str
    kind: str
    title: str
    caption: str = ""
    run_id: str | None = None
    run_name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    notes: str = ""
    pinned_at: float = 0.0

    def settings_text(self) -> str:
        """"metric: MMD · layer: features" — one line for a caption or the slide notes."""
        return " · ".join(f"{k}: {v}" for k, v in self.settings.items())

    def run_text(self) -> str:
        """The run by its given name, with its id after it ("DANN digits (20261203-…)")."""
        if self.run_id is None:
            return ""
        return f"{self.run_name} ({self.run_id})" if self.run_name and self.run_name != self.run_id else self.run_id


def _item(raw: Any, where: str) -> DeckItem:
    """A DeckItem from JSON, every field checked; DeckError naming ``where`` otherwise."""
    if not isinstance(raw, dict):
        raise DeckError(f"{where}: an item is not an object")
    pairs = raw.get("settings")
    if isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
        raw = raw | {"settings": dict(pairs)}
    try:
        item = DeckItem(**{k: raw[k] for k in DeckItem.__dataclass_fields__ if k in raw})
    except TypeError as e:
        raise DeckError(f"{where}: an item lacks a field ({e})") from None
    checks = [
        (isinstance(item.item_id, str) and ITEM_PATTERN.fullmatch(item.item_id) is not None, "item_id"),
        (item.kind in KINDS, "kind"),
        (isinstance(item.title, str) and isinstance(item.caption, str) and isinstance(item.notes, str), "text"),
        (item.run_id is None or isinstance(item.run_id, str), "run_id"),
        (isinstance(item.settings, dict), "settings"),
        (item.spec is None or (isinstance(item.spec, dict) and isinstance(item.spec.get("builder"), str)
                               and isinstance(item.spec.get("inputs"), dict)), "spec"),  # fmt: skip
        (isinstance(item.pinned_at, int | float), "pinned_at"),
    ]
    if bad := [name for ok, name in checks if not ok]:
        raise DeckError(f"{where}: an item has a bad {', '.join(bad)}")
    return item


@dataclass(frozen=True)
class DeckRead:
    """What a read found: the items, and the one message about a damaged file (None when sound)."""

    items: tuple[DeckItem, ...]
    problem: str | None = None


class Deck:
    """The deck of one user in one run store. Methods read the file afresh, change it, write it back."""

    def __init__(self, store_root: Path | str, user: str) -> None:
        if not isinstance(user, str) or not USER_PATTERN.fullmatch(user):
            raise DeckError(f"a deck's user is letters, digits, '-' and '_' (1 to 64), not {user!r}")
        self.dir = Path(store_root) / DECKS_DIR
        self.path = self.dir / f"{user}.json"
        self.snapshots = self.dir / user

    # ---------------------------------------------------------------------------------- reading
    def read(self) -> DeckRead:
        """The items in order. A damaged file gives an empty deck and one message; it stays on disk
        (moved aside at the next write), so nothing is lost."""
        if not self.path.exists():
            return DeckRead(())
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("items"), list):
                raise DeckError(f"{self.path} is not a deck (no list of items)")
            items = tuple(_item(r, str(self.path)) for r in raw["items"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, DeckError) as e:
            why = e if isinstance(e, DeckError) else f"{self.path} cannot be read ({type(e).__name__}: {e})"
            return DeckRead((), f"The deck file is damaged, so the deck starts empty: {why}. The file is kept "
                                "(renamed *.damaged-<time>) when the next item is pinned.")  # fmt: skip
        if len({i.item_id for i in items}) != len(items):
            return DeckRead((), f"The deck file is damaged, so the deck starts empty: {self.path} repeats an item.")
        return DeckRead(items)

    def items(self) -> tuple[DeckItem, ...]:
        return self.read().items

    def snapshot(self, item_id: str) -> dict[str, Any] | None:
        """The item's stored snapshot (plotly JSON as a dict, or a table's cells); None when absent
        or damaged (the caller says so for that item only)."""
        path = self.snapshots / f"{item_id}.json"
        if not ITEM_PATTERN.fullmatch(item_id) or not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    # ---------------------------------------------------------------------------------- writing
    def _write(self, items: tuple[DeckItem, ...] | list[DeckItem]) -> None:
        if self.path.exists() and self.read().problem is not None:  # keep the damaged file
            self.path.rename(self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))
        # settings as [name, value] pairs: the file's keys are sorted, and the settings read in the page's order
        rows = [asdict(i) | {"settings": [[k, v] for k, v in i.settings.items()]} for i in items]
        write_json_atomic(self.path, {"version": DECK_VERSION, "items": rows})

    def pin(self, item: DeckItem, snapshot: dict[str, Any]) -> DeckItem:
        """Add ``item`` (a fresh id and time are given) at the end, with its snapshot. The snapshot is
        written first: an item in the deck file always has one."""
        if item.kind not in KINDS:
            raise DeckError(f"unknown kind {item.kind!r}; one of {', '.join(KINDS)}")
        item = replace(item, item_id=secrets.token_hex(6), pinned_at=time.time())
        _item(asdict(item), "the new item")  # the same checks as a read
        self.snapshots.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.snapshots / f"{item.item_id}.json", snapshot)
        self._write([*self.items(), item])
        return item

    def _change(self, item_id: str, change: Any) -> None:
        items = list(self.items())
        at = next((n for n, i in enumerate(items) if i.item_id == item_id), None)
        if at is None:
            raise DeckError(f"no item {item_id!r} in the deck (removed in another tab?)")
        self._write(change(items, at))

    def remove(self, item_id: str) -> None:
        self._change(item_id, lambda items, at: items[:at] + items[at + 1:])
        (self.snapshots / f"{item_id}.json").unlink(missing_ok=True)

    def move(self, item_id: str, step: int) -> None:
        """Move an item ``step`` places (-1: up, 1: down); at either end it stays."""

        def moved(items: list[DeckItem], at: int) -> list[DeckItem]:
            to = min(max(at + step, 0), len(items) - 1)
            items.insert(to, items.pop(at))
            return items

        self._change(item_id, moved)

    def set_notes(self, item_id: str, notes: str) -> None:
        self._change(item_id, lambda items, at: [*items[:at], replace(items[at], notes=str(notes)), *items[at + 1:]])


def table_snapshot(columns: list[Any], rows: list[list[Any]]) -> dict[str, Any]:
    """A table's cells as the page shows them: numbers written by vizcore.core.numbers, the rest as text."""
    from vizcore.core.numbers import fmt

    def cell(v: Any) -> str:
        return fmt(v) if isinstance(v, float) or v is None else str(v)

    return {"columns": [str(c) for c in columns], "rows": [[cell(v) for v in r] for r in rows]}


def pin_figure(deck: Deck, fig: Any, *, title: str, caption: str = "", run_id: str | None = None,
               run_name: str | None = None, settings: dict[str, Any] | None = None,
               spec: dict[str, Any] | None = None) -> DeckItem:  # fmt: skip
    """Pin a plotly figure: its snapshot (plotly JSON) and, when given, its recorded spec."""
    item = DeckItem("0" * 12, "figure", title, caption, run_id, run_name, dict(settings or {}), spec)
    return deck.pin(item, json.loads(fig.to_json()))


def pin_table(deck: Deck, columns: list[Any], rows: list[list[Any]], *, title: str, caption: str = "",
              run_id: str | None = None, run_name: str | None = None,
              settings: dict[str, Any] | None = None) -> DeckItem:  # fmt: skip
    """Pin a table (its cells as text, as shown)."""
    item = DeckItem("0" * 12, "table", title, caption, run_id, run_name, dict(settings or {}))
    return deck.pin(item, table_snapshot(columns, rows))
