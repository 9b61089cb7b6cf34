"""The CAM page's explanation methods, faithfulness table and side-by-side comparison (AppTest)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.paths import APP, ROOT


def _cam_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/cam.py").run()
    assert not at.exception, at.exception
    return at


def _select(at: AppTest, label: str):
    return next(s for s in at.selectbox if s.label == label)


def test_a_gradient_method_draws_its_maps_and_names_the_target_layer() -> None:
    at = _cam_page()
    assert any("Target layer: `features`" in e.label for e in at.expander)
    _select(at, "Method").set_value("Grad-CAM").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "Grad-CAM" in json.dumps(spec["layout"]["title"])
    assert any("the maps of the images shown are computed first" in c.value for c in at.caption)


def test_a_class_agnostic_method_is_not_titled_with_a_class() -> None:
    at = _cam_page()
    _select(at, "Method").set_value("Eigen-CAM").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    title = json.dumps(json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"])
    assert "Eigen-CAM (class-agnostic" in title and "predicted class" not in title


def test_cam_at_an_inner_layer_is_refused_with_a_warning_not_a_traceback() -> None:
    at = _cam_page()
    _select(at, "Explain at layer (expert)").set_value("features.0").run()
    assert not at.exception
    assert any("defined only at" in w.value for w in at.warning)


def test_two_methods_side_by_side_give_an_agreement_number() -> None:
    at = _cam_page()
    at.toggle(key="cam_compare_on").set_value(True).run()
    _select(at, "Second method").set_value("Grad-CAM").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    agreement = next(m for m in at.metric if m.label.startswith("agreement"))
    # CAM and Grad-CAM differ only by a ReLU and a scale at the last block: nearly the same maps
    assert 0.5 < float(agreement.value) <= 1.0


def test_two_runs_of_different_images_are_not_compared() -> None:
    at = _cam_page()
    at.toggle(key="cam_compare_on").set_value(True).run()
    at.radio(key="cam_against").set_value("another run").run()
    second = _select(at, "Second run (e.g. teacher and student, parent and child)")
    second.set_value("demo-lenet-gap-plus-cluttered").run()
    assert not at.exception
    assert any("cannot be compared" in w.value for w in at.warning)


def _count_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many images every model's forward pass sees from now on (rows of its batches)."""
    from vizcore.models import MODELS

    rows, depth = [0], [0]
    for name in MODELS:
        cls = MODELS.get(name)

        def counted(self, x, _original=cls.forward_features):  # type: ignore[no-untyped-def]
            rows[0] += len(x) if depth[0] == 0 else 0  # a subclass's pass calls its parent's: once
            depth[0] += 1
            try:
                return _original(self, x)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(cls, "forward_features", counted)
    return rows


def test_a_methods_maps_are_computed_once_then_read(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _count_rows(monkeypatch)
    at = _cam_page()
    _select(at, "Method").set_value("Layer-CAM").run()
    before = rows[0]
    _select(at, "Explain at layer (expert)").set_value("features.0").run()
    assert rows[0] > before  # computed once...
    after = rows[0]
    _select(at, "Explain class").set_value("3").run()  # every class was computed with the first
    _select(at, "Show").set_value("misclassified").run()
    now = rows[0]
    _select(at, "Show").set_value("all").run()
    _select(at, "Method").set_value("CAM").run()
    _select(at, "Method").set_value("Layer-CAM").run()
    assert not at.exception and not at.error
    assert rows[0] == now  # ...then read, for the same images
    assert now - after <= 24 * 10 + 1  # the misclassified grid: its own images only


@pytest.mark.parametrize("method", ["Score-CAM", "Grad-CAM++"])
def test_a_slow_method_computes_the_images_shown_and_queues_the_whole_split(
    method: str, monkeypatch: pytest.MonkeyPatch, _background_queue, unscored_demo
) -> None:
    from vizcore.store.runs import RunStore
    from vizcore.views.explanations import scoring_spec

    unscored_demo("demo-lenet-gap-plus-cluttered")  # the shipped demo has every method's scores
    at = _cam_page()
    at.selectbox(key="_cam_run_select").set_value("demo-lenet-gap-plus-cluttered").run()
    rows = _count_rows(monkeypatch)
    _select(at, "Method").set_value(method).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    shown, channels, classes = 24, 128, 10  # the grid; the last block's channels; the classes
    # Score-CAM: one pass for the activations and one masked pass per channel, per image shown;
    # Grad-CAM++: one pass to count the classes, then one forward (and backward) per class
    most = shown * (channels + 1) if method == "Score-CAM" else 1 + shown * classes
    assert 0 < rows[0] <= most, rows[0]  # the whole split (500 images) would be far more
    run = RunStore().get("demo-lenet-gap-plus-cluttered")
    task = _background_queue.find(scoring_spec(run, "source", method))
    assert task is not None and task.state == "queued"  # asked for, not run in the click
    assert any("In the background" in p.proto.text for p in at.get("progress"))
    assert any(b.label == "Stop" for b in at.button)


@pytest.mark.slow  # the page once per explanation method
def test_the_headline_numbers_are_the_same_for_every_method() -> None:
    from vizcore.explain.methods import list_explainers

    at = _cam_page()
    at.selectbox(key="_cam_run_select").set_value("demo-lenet-gap-plus-cluttered").run()
    headline = {}
    for method in list_explainers():
        _select(at, "Method").set_value(method).run()
        assert not at.exception, at.exception
        headline[method] = [(m.label, m.value) for m in at.metric[:2]]
    first = headline["CAM"]
    assert first[0][0] == "source test accuracy" and first[1][0] == "misclassified"
    assert all(h == first for h in headline.values()), headline


def test_the_demo_runs_faithfulness_table_is_shipped_and_shown() -> None:
    at = _cam_page()
    at.selectbox(key="_cam_run_select").set_value("demo-lenet-gap-mnist").run()
    assert not any(b.key == "score_explanations" for b in at.button), "every method is scored for the demo run"
    table = at.dataframe[0].value
    assert list(table["method"]) == ["CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM", "Layer-CAM", "XGrad-CAM",
                                     "Eigen-CAM"]  # fmt: skip
    assert any(s.value.startswith("Most faithful:") for s in at.success)
    # the shipped sanity checks: their columns, the methods that fail them, and the figure's caption
    assert {"rank corr. after full randomisation ↓", "SSIM after full randomisation ↓",
            "random-logit SSIM ↓"} <= set(table.columns)  # fmt: skip
    assert any("Fails the randomisation sanity check" in s.value and "Eigen-CAM" in s.value for s in at.success)
    assert any(c.value.startswith("Each row: one method's map") for c in at.caption)


def test_no_button_has_a_key_the_app_remembers() -> None:
    """app.py re-assigns every widget key under pages._shared.REMEMBERED on each run, and Streamlit
    refuses to set a button's state: such a key is a traceback on the next click (it was, on the
    Faithfulness tab's Score button)."""
    import re

    from pages._shared import REMEMBERED

    pages = ROOT / "pages"
    calls = [f.read_text(encoding="utf-8")[m.end():m.end() + 300] for f in pages.glob("*.py") for m in re.finditer(r"\bbutton\(", f.read_text(encoding="utf-8"))]
    keys = [k.group(1) for c in calls if (k := re.search(r"key=f?\"([^\"]+)\"", c.split("\n\n")[0]))]
    assert keys, "the scan finds the buttons' keys"
    assert [k for k in keys if k.startswith(REMEMBERED)] == []
