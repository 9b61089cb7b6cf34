"""The CAM page's explanation methods, faithfulness table and side-by-side comparison (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()


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
    assert any("explains the first 500 test images" in c.value for c in at.caption)


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


def test_a_methods_maps_are_computed_once_then_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from vizcore.models import MODELS

    count = [0]
    for name in MODELS:
        cls = MODELS.get(name)

        def counted(self, x, _original=cls.forward_features):  # type: ignore[no-untyped-def]
            count[0] += 1
            return _original(self, x)

        monkeypatch.setattr(cls, "forward_features", counted)
    at = _cam_page()
    _select(at, "Method").set_value("Layer-CAM").run()
    # the demo runs ship every method's maps at the default layer: an inner layer is computed here
    before = count[0]
    _select(at, "Explain at layer (expert)").set_value("features.0").run()
    assert count[0] > before  # computed once...
    after = count[0]
    _select(at, "Show").set_value("misclassified").run()
    _select(at, "Method").set_value("CAM").run()
    _select(at, "Method").set_value("Layer-CAM").run()
    assert not at.exception and not at.error
    assert count[0] == after  # ...then read from the run's cache


def test_the_demo_runs_faithfulness_table_is_shipped_and_shown() -> None:
    at = _cam_page()
    at.selectbox(key="_cam_run_select").set_value("demo-lenet-gap-mnist").run()
    assert not any(b.key == "score_explanations" for b in at.button), "every method is scored for the demo run"
    table = at.dataframe[0].value
    assert list(table["method"]) == ["CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM", "Layer-CAM", "XGrad-CAM",
                                     "Eigen-CAM"]  # fmt: skip
    assert any(s.value.startswith("Most faithful:") for s in at.success)


def test_no_button_has_a_key_the_app_remembers() -> None:
    """app.py re-assigns every widget key under pages._shared.REMEMBERED on each run, and Streamlit
    refuses to set a button's state: such a key is a traceback on the next click (it was, on the
    Faithfulness tab's Score button)."""
    import re

    from pages._shared import REMEMBERED

    pages = Path(__file__).resolve().parent.parent / "pages"
    calls = [f.read_text()[m.end():m.end() + 300] for f in pages.glob("*.py") for m in re.finditer(r"\bbutton\(", f.read_text())]
    keys = [k.group(1) for c in calls if (k := re.search(r"key=f?\"([^\"]+)\"", c.split("\n\n")[0]))]
    assert keys, "the scan finds the buttons' keys"
    assert [k for k in keys if k.startswith(REMEMBERED)] == []
