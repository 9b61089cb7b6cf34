"""The deck: pinned items kept in the store, re-made from their recorded specs, exported as slides."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from vizcore.store.runs import RunStore
from vizcore.views import builders
from vizcore.views import distances as dv
from vizcore.views.deck import Deck, DeckError, pin_figure, pin_table
from vizcore.views.slides import (
    deck_html,
    deck_pdf,
    deck_pptx,
    deck_slides,
    figure_numbers,
    make_slide,
    plain,
)


def _png(w: int = 300, h: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), "steelblue").save(out, "PNG")
    return out.getvalue()


def _fig(title: str) -> go.Figure:
    return go.Figure(go.Heatmap(z=[[0.0, 1.5], [1.5, 0.0]], name="mmd"), layout={"title": {"text": title}})


def _trace_data(fig: go.Figure) -> list[dict]:
    """What a figure shows, trace by trace, as JSON (so numpy arrays and lists compare alike)."""
    keys = ("type", "x", "y", "z", "text", "customdata", "name")
    return [json.loads(json.dumps({k: t.to_plotly_json().get(k) for k in keys}, default=str)) for t in fig.data]


def test_pins_survive_a_new_deck_object_and_keep_their_order(tmp_path) -> None:
    deck = Deck(tmp_path, "alice")
    a = pin_figure(deck, _fig("A"), title="A", caption="first", run_id="r1", run_name="DANN",
                   settings={"metric": "MMD", "layer": "GAP"})  # fmt: skip
    b = pin_table(deck, ["class", "value"], [["0", 0.5], ["1", -0.0001]], title="B")
    c = pin_figure(deck, _fig("C"), title="C")
    again = Deck(tmp_path, "alice")  # a reload: only the store is left
    assert [i.title for i in again.items()] == ["A", "B", "C"]
    assert again.items()[0].run_text() == "DANN (r1)"
    assert list(again.items()[0].settings.items()) == [("metric", "MMD"), ("layer", "GAP")]  # in the page's order
    assert again.snapshot(b.item_id)["rows"] == [["0", "0.500"], ["1", "-1.00e-04"]]
    again.move(c.item_id, -1)
    again.move(a.item_id, -1)  # at the top already: stays
    again.set_notes(a.item_id, "say why the diagonal is small")
    again.remove(b.item_id)
    items = Deck(tmp_path, "alice").items()
    assert [i.title for i in items] == ["A", "C"] and items[0].notes == "say why the diagonal is small"
    assert again.snapshot(b.item_id) is None
    assert Deck(tmp_path, "bob").items() == ()  # one deck per user


@pytest.mark.parametrize("text", ["{not json", '{"items": 3}', '{"items": [{"item_id": "x", "kind": "figure"}]}', "[]"])
def test_a_damaged_deck_file_gives_an_empty_deck_and_one_message_and_is_kept(tmp_path, text: str) -> None:
    deck = Deck(tmp_path, "alice")
    deck.path.parent.mkdir(parents=True)
    deck.path.write_text(text)
    read = deck.read()
    assert read.items == () and "damaged" in read.problem and str(deck.path) in read.problem
    pin_figure(deck, _fig("new"), title="new")  # the next pin starts afresh and keeps the damaged file
    assert [i.title for i in deck.items()] == ["new"] and deck.read().problem is None
    kept = list(deck.path.parent.glob("alice.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == text


@pytest.mark.parametrize("user", ["../x", "", "a/b", "x" * 65, "é"])
def test_a_hostile_user_name_is_refused(tmp_path, user: str) -> None:
    with pytest.raises(DeckError):
        Deck(tmp_path, user)


def test_pptx_and_pdf_have_one_slide_per_item_with_its_title_and_picture(tmp_path) -> None:
    from pptx import Presentation

    deck = Deck(tmp_path, "alice")
    pin_figure(deck, _fig("Class distances<br>MMD"), title="Class distances MMD", caption="diagonal: noise floor")
    pin_table(deck, ["metric", "before", "after"], [["A-distance", 1.9, 1.2]], title="Numbers")
    pin_figure(deck, _fig("Curves"), title="Curves")
    slides, problems = deck_slides(deck, RunStore(tmp_path / "runs", demo_root=None))
    assert problems == []
    pngs = [_png() if s.figure is not None else None for s in slides]
    prs = Presentation(io.BytesIO(deck_pptx(slides, pngs)))
    assert prs.slide_width * 9 == prs.slide_height * 16
    assert [s.shapes.title.text for s in prs.slides] == ["Class distances MMD", "Numbers", "Curves"]
    kinds = [{sh.shape_type for sh in s.shapes} for s in prs.slides]
    assert [13 in k for k in kinds] == [True, False, True]  # MSO_SHAPE_TYPE.PICTURE
    assert any(sh.has_table for sh in prs.slides[1].shapes)
    notes = prs.slides[0].notes_slide.notes_text_frame.text
    assert "diagonal: noise floor" in notes and "1.50" in notes  # caption and the heatmap's numbers
    pdf = deck_pdf(slides, pngs)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == 3
    assert deck_html(slides).count("<section") == 3


def test_figure_numbers_and_plain_titles() -> None:
    assert plain("<b>before</b><br>DANN &amp; co") == "before DANN & co"
    fig = go.Figure([go.Scatter(x=[1, 2, 3], y=[0.1, 0.2, 0.25], mode="lines", name="run a"),
                     go.Scatter(x=[0, 1], y=[0, 1], mode="markers", name="pts")])  # fmt: skip
    assert figure_numbers(fig) == ["run a: last 0.250 (of 3 points)", "pts: 2 points"]


def test_a_pinned_matrix_re_renders_equal_to_the_original(trained_run, tmp_path) -> None:
    store = RunStore(trained_run.path.parent, demo_root=None)
    settings = dv.DistanceSettings(n_per_class=8, n_perm=0)
    inputs = dict(run_id=trained_run.run_id, which="source", split="test", layer="gap", settings=settings,
                  title="tiny — source", alpha=0.05, cluster=True, presentation=False)  # fmt: skip
    view = dv.class_matrix(trained_run, "source", "test", "gap", settings)
    original = builders.matrix_from_view(view, "tiny — source", 0.05, False, cluster=True)  # as the page draws it
    deck = Deck(tmp_path, "alice")
    item = pin_figure(deck, original, title="tiny", run_id=trained_run.run_id, spec=builders.spec("distance_matrix", **inputs))
    recorded = Deck(tmp_path, "alice").items()[0].spec  # through the JSON file
    again = builders.remake(recorded, store)
    assert _trace_data(again) == _trace_data(original)
    assert np.array_equal(np.asarray(again.data[0].z, float), np.asarray(original.data[0].z, float))
    slide = make_slide(deck, item, store)
    assert "Re-made from its recorded settings" in slide.notes
    assert slide.figure.layout.font.size > original.layout.font.size  # slides are drawn presentation-size


def test_training_curves_re_made_and_a_missing_run_falls_back_to_the_snapshot(trained_run, tmp_path) -> None:
    from vizcore.figures.training import compare_curves, training_curves
    from vizcore.methods import curves_of

    store = RunStore(trained_run.path.parent, demo_root=None)
    original = compare_curves([(trained_run.config().label, trained_run.metrics())], "source_acc")
    spec = builders.spec("training_curves", run_ids=[trained_run.run_id], key="source_acc")
    assert _trace_data(builders.remake(spec, store)) == _trace_data(original)
    live = training_curves(trained_run.metrics(), curves=curves_of(trained_run.config().method)[0],
                           epoch_curves=curves_of(trained_run.config().method)[1])  # the Train page's plot  # fmt: skip
    assert _trace_data(builders.remake(builders.spec("run_curves", run_id=trained_run.run_id), store)) == _trace_data(live)
    deck = Deck(tmp_path, "alice")
    gone = dict(spec, inputs={"run_ids": ["20990101-000000-gone-0000"], "key": "source_acc"})
    item = pin_figure(deck, original, title="curves", spec=gone)
    slide = make_slide(deck, item, store)
    assert "Could not re-make it" in slide.notes and _trace_data(slide.figure) == _trace_data(original)


def test_an_unknown_builder_is_refused_when_recorded() -> None:
    with pytest.raises(KeyError, match="valid names"):
        builders.spec("no_such_figure", x=1)


@pytest.mark.slow
def test_a_deck_exports_with_real_images(tmp_path) -> None:
    """kaleido draws the figures (starts Chromium: slow)."""
    from pptx import Presentation

    from vizcore.views.export import static_export_available

    if not static_export_available():
        pytest.skip("no Chromium for kaleido")
    deck = Deck(tmp_path, "alice")
    pin_figure(deck, _fig("One"), title="One")
    pin_figure(deck, _fig("Two"), title="Two")
    slides, _ = deck_slides(deck, RunStore(tmp_path / "runs", demo_root=None))
    prs = Presentation(io.BytesIO(deck_pptx(slides)))
    pictures = [sh for s in prs.slides for sh in s.shapes if sh.shape_type == 13]
    assert len(pictures) == 2 and min(p.image.size[0] for p in pictures) >= 1200  # high resolution
    assert len(re.findall(rb"/Type\s*/Page\b", deck_pdf(slides))) == 2
