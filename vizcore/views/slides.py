"""A deck as slides: PowerPoint (python-pptx), PDF (the same slides drawn with Pillow) and HTML.

Every item becomes one 16:9 slide: its title at the top, the figure as a high-resolution PNG
(kaleido) or the table as a table, the caption below. The slide notes carry the run (given name and
id), the settings, the figure's numbers and the presenter's notes.

A figure with a recorded spec is re-made from it (:func:`vizcore.views.builders.remake`), in
presentation size, so a deck exported after a retrain shows the new weights; a figure without one,
or whose run is gone, is drawn from its snapshot and the slide notes say so.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from vizcore.core.errors import DataUnavailable
from vizcore.core.numbers import fmt
from vizcore.core.registry import UnknownNameError
from vizcore.store.info import RunNotFound
from vizcore.store.runs import CheckpointError, RunStore
from vizcore.views.builders import remake
from vizcore.views.deck import Deck, DeckItem

SLIDE_PX = (1920, 1080)  # 16:9; the PDF pages and the PowerPoint slides share this layout
PNG_SCALE = 2.0  # kaleido's scale: a 900-px figure becomes an 1800-px image
SLIDE_FIGURE_PX = (1400, 620)  # a stretched figure's size on a slide (the room below the title)
REMAKE_ERRORS = (UnknownNameError, RunNotFound, CheckpointError, DataUnavailable, ValueError, KeyError, TypeError)
MAX_NOTE_ROWS = 12  # numbers per figure written into the notes (a 10×10 matrix fits)


@dataclass(frozen=True)
class Slide:
    """One item made ready to draw: a figure or a table (columns, rows of text), and the words."""

    title: str
    caption: str
    notes: str
    figure: go.Figure | None = None
    table: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None = None


def plain(text: str) -> str:
    """A plotly title as plain text: tags dropped, ``<br>`` as a space."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", " ", text or ""))).strip()


def figure_title(fig: go.Figure) -> str:
    return plain(fig.layout.title.text or "")


def figure_numbers(fig: go.Figure) -> list[str]:
    """The numbers a figure shows, one line each, for the slide notes: a heatmap's rows, a curve's
    last value, a scatter's count of points."""
    lines: list[str] = []
    for t in fig.data:
        name = plain(getattr(t, "name", None) or "") or t.type
        if t.type == "heatmap" and t.z is not None:
            rows = [list(r) for r in t.z][:MAX_NOTE_ROWS]
            lines += [f"{name}:"] + ["  " + " ".join(fmt(v) for v in r[:MAX_NOTE_ROWS]) for r in rows]
        elif t.type == "scatter" and t.y is not None and len(t.y) and (t.mode or "").startswith("lines"):
            lines.append(f"{name}: last {fmt(t.y[-1])} (of {len(t.y)} points)")
        elif t.type in ("scatter", "scattergl") and t.x is not None and len(t.x) > 1:  # not a lone marker
            lines.append(f"{name}: {len(t.x):,} points")
    return lines


def _notes(item: DeckItem, numbers: Sequence[str], source: str) -> str:
    parts = [item.caption, f"Run: {item.run_text()}" if item.run_id else "",
             f"Settings: {item.settings_text()}" if item.settings else "", source,
             "Numbers:\n" + "\n".join(numbers) if numbers else "", f"Notes: {item.notes}" if item.notes else ""]  # fmt: skip
    return "\n".join(p for p in parts if p)


def make_slide(deck: Deck, item: DeckItem, store: RunStore, use_spec: bool = True) -> Slide:
    """The slide of one item: re-made from its spec when it has one (``use_spec``), else from its
    snapshot. Raises ValueError when neither is there (the caller names the item)."""
    snap = deck.snapshot(item.item_id)
    if item.kind == "table":
        if snap is None or not isinstance(snap.get("columns"), list) or not isinstance(snap.get("rows"), list):
            raise ValueError(f"the table {item.title!r} has no readable snapshot")
        table = (tuple(map(str, snap["columns"])), tuple(tuple(map(str, r)) for r in snap["rows"]))
        return Slide(item.title, item.caption, _notes(item, [], ""), table=table)
    fig, source = None, "Drawn from the snapshot taken when it was pinned."
    if use_spec and item.spec is not None:
        try:
            fig, source = remake(item.spec, store, presentation=True), "Re-made from its recorded settings."
        except REMAKE_ERRORS as e:
            source = f"Could not re-make it ({e}); drawn from the snapshot taken when it was pinned."
    if fig is None:
        if snap is None:
            raise ValueError(f"the figure {item.title!r} has no readable snapshot and cannot be re-made")
        fig = pio.from_json(json.dumps(snap))
    return Slide(item.title or figure_title(fig), item.caption, _notes(item, figure_numbers(fig), source), figure=fig)


def deck_slides(deck: Deck, store: RunStore, use_spec: bool = True,
                progress: Callable[[float, str], None] | None = None) -> tuple[list[Slide], list[str]]:  # fmt: skip
    """Every item's slide, in order, and one line for each item that could not be made."""
    items = deck.items()
    slides, problems = [], []
    for n, item in enumerate(items):
        if progress is not None:
            progress(n / max(len(items), 1), item.title)
        try:
            slides.append(make_slide(deck, item, store, use_spec))
        except ValueError as e:
            problems.append(f"Left out: {e}.")
    return slides, problems


def slide_png(slide: Slide) -> bytes:
    """The figure as a PNG for a slide, its own title dropped (the slide's title says it)."""
    from vizcore.figures import TITLE_PAD, fit_text, title_room
    from vizcore.views.export import figure_static

    fig = go.Figure(slide.figure)
    fig.update_layout(title_text="")
    fig.update_layout(margin_t=max(20, title_room(fig.layout.to_plotly_json()) - TITLE_PAD))  # room for panel titles
    if fig.layout.width is None:  # a page's figure stretches to the page: on a slide, to 16:9
        fig.update_layout(width=SLIDE_FIGURE_PX[0], height=SLIDE_FIGURE_PX[1])
    return figure_static(fit_text(fig), "png", PNG_SCALE)


# ---------------------------------------------------------------------------------- PowerPoint


def deck_pptx(slides: Sequence[Slide], pngs: Sequence[bytes | None] | None = None) -> bytes:
    """A .pptx, 16:9, one slide per item. ``pngs``: the figures' images (made here when None)."""
    from pptx import Presentation
    from pptx.util import Emu, Inches, Pt

    pngs = list(pngs) if pngs is not None else [slide_png(s) if s.figure is not None else None for s in slides]
    prs = Presentation()
    prs.slide_width, prs.slide_height = Emu(12192000), Emu(6858000)  # 13.333 × 7.5 in, 16:9
    blank = prs.slide_layouts[5]  # "Title Only"
    for slide, png in zip(slides, pngs, strict=True):
        s = prs.slides.add_slide(blank)
        s.shapes.title.text = slide.title
        s.shapes.title.left, s.shapes.title.top = Inches(0.4), Inches(0.2)
        s.shapes.title.width, s.shapes.title.height = Inches(12.5), Inches(1.0)
        for p in s.shapes.title.text_frame.paragraphs:
            p.font.size = Pt(28 if len(slide.title) < 70 else 22)
        box = (Inches(0.5), Inches(1.3), Inches(12.33), Inches(5.2))
        if png is not None:
            from PIL import Image

            w, h = Image.open(io.BytesIO(png)).size
            k = min(box[2] / w, box[3] / h)
            pw, ph = Emu(int(w * k)), Emu(int(h * k))
            s.shapes.add_picture(io.BytesIO(png), box[0] + (box[2] - pw) // 2, box[1], pw, ph)
        elif slide.table is not None:
            _pptx_table(s, slide.table, box)
        if slide.caption:
            tf = s.shapes.add_textbox(Inches(0.5), Inches(6.6), Inches(12.33), Inches(0.8)).text_frame
            tf.word_wrap = True
            tf.text = slide.caption
            tf.paragraphs[0].font.size = Pt(14)
        s.notes_slide.notes_text_frame.text = slide.notes
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def _pptx_table(s: Any, table: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], box: tuple[int, ...]) -> None:
    from pptx.util import Pt

    columns, rows = table
    rows = rows[:20]  # more rows do not fit a slide; the HTML report has them all
    shape = s.shapes.add_table(len(rows) + 1, len(columns), box[0], box[1], box[2], min(box[3], 370000 * (len(rows) + 1)))
    size = Pt(max(10, min(20, 300 // (len(rows) + 1))) if len(columns) <= 6 else 11)
    for j, c in enumerate(columns):
        shape.table.cell(0, j).text = c
    for i, r in enumerate(rows, start=1):
        for j, v in enumerate(r[: len(columns)]):
            shape.table.cell(i, j).text = v
    for cell in (shape.table.cell(i, j) for i in range(len(rows) + 1) for j in range(len(columns))):
        for p in cell.text_frame.paragraphs:
            p.font.size = size


# ---------------------------------------------------------------------------------- PDF


def _font(size: int) -> Any:
    """DejaVu Sans where the system has it (it has ρ, −, →), else Pillow's own scalable font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _wrapped(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """``text`` cut into lines no wider than ``width`` pixels."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def slide_image(slide: Slide, png: bytes | None) -> Any:
    """The slide drawn as a 1920×1080 RGB image: title, figure or table, caption (the PDF's page)."""
    from PIL import Image, ImageDraw

    W, H = SLIDE_PX
    page = Image.new("RGB", SLIDE_PX, "white")
    draw = ImageDraw.Draw(page)
    title_font = _font(52 if len(slide.title) < 70 else 40)
    y = 40
    for line in _wrapped(draw, slide.title, title_font, W - 120)[:2]:
        draw.text((60, y), line, fill="#222222", font=title_font)
        y += int(title_font.size * 1.25)
    cap_font = _font(28)
    caption = _wrapped(draw, slide.caption, cap_font, W - 120)[:3] if slide.caption else []
    bottom = H - 40 - len(caption) * int(cap_font.size * 1.3)
    top, room = y + 20, (W - 120, bottom - y - 40)
    if png is not None:
        fig = Image.open(io.BytesIO(png)).convert("RGB")
        k = min(room[0] / fig.width, room[1] / fig.height)
        fig = fig.resize((max(1, int(fig.width * k)), max(1, int(fig.height * k))), Image.LANCZOS)
        page.paste(fig, ((W - fig.width) // 2, top))
    elif slide.table is not None:
        _draw_table(draw, slide.table, (60, top, W - 60, bottom - 20))
    for n, line in enumerate(caption):
        draw.text((60, bottom + n * int(cap_font.size * 1.3)), line, fill="#444444", font=cap_font)
    return page


def _draw_table(draw: Any, table: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], box: tuple[int, ...]) -> None:
    columns, rows = table
    rows = rows[:20]
    font = _font(max(18, min(40, (box[3] - box[1]) // int(1.6 * (len(rows) + 1)), 26 if len(columns) > 6 else 40)))
    widths = [max(draw.textlength(v, font=font) for v in [c, *(r[j] if j < len(r) else "" for r in rows)]) + 24
              for j, c in enumerate(columns)]  # fmt: skip
    k = min(1.0, (box[2] - box[0]) / max(sum(widths), 1))
    row_h = min(int(font.size * 1.6), (box[3] - box[1]) // (len(rows) + 1))
    for i, r in enumerate([columns, *rows]):
        x, y = box[0], box[1] + i * row_h
        if i == 0:
            draw.rectangle((box[0], y, box[0] + sum(widths) * k, y + row_h), fill="#eeeeee")
        for j, w in enumerate(widths):
            draw.rectangle((x, y, x + w * k, y + row_h), outline="#bbbbbb")
            draw.text((x + 10, y + (row_h - font.size) // 2), r[j] if j < len(r) else "", fill="#222222", font=font)
            x += w * k


def deck_pdf(slides: Sequence[Slide], pngs: Sequence[bytes | None] | None = None) -> bytes:
    """A PDF, one 16:9 page per item, the same layout as the PowerPoint."""
    pngs = list(pngs) if pngs is not None else [slide_png(s) if s.figure is not None else None for s in slides]
    pages = [slide_image(s, p) for s, p in zip(slides, pngs, strict=True)]
    if not pages:
        raise ValueError("the deck is empty: pin a figure or a table first")
    out = io.BytesIO()
    pages[0].save(out, "PDF", resolution=144.0, save_all=True, append_images=pages[1:])
    return out.getvalue()


# ---------------------------------------------------------------------------------- HTML


def deck_html(slides: Sequence[Slide], title: str = "vizcore deck") -> str:
    """The deck as the report's one offline HTML file: a section per item, interactive figures."""
    from vizcore.views.report import Report, Section

    sections = []
    for n, slide in enumerate(slides, start=1):
        sec = Section(f"item-{n}", slide.title)
        if slide.figure is not None:
            sec.figure(go.Figure(slide.figure))
        elif slide.table is not None:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in slide.table[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in slide.table[1])
            sec.raw(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if slide.caption:
            sec.text(slide.caption)
        sec.raw(f"<pre class='mono'>{html.escape(slide.notes)}</pre>")
        sections.append(sec)
    return Report(title, sections).to_html()
