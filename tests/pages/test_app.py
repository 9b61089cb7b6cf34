"""AppTest: every page renders without an exception; the main flows work headless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.app.jobs import MANAGER
from vizcore.store.runs import DEMO_ROOT

PAGES = [
    "pages/home.py",
    "pages/train.py",
    "pages/data.py",
    "pages/compare.py",
    "pages/sweeps.py",
    "pages/cam.py",
    "pages/distances.py",
    "pages/embeddings.py",
    "pages/report.py",
    "pages/upload.py",
]


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str) -> None:
    at = _app()
    at.switch_page(page).run()
    assert not at.exception, at.exception


def test_presentation_switch_is_drawn_by_the_app_for_every_page() -> None:
    # app.py draws it around st.navigation (AppTest.switch_page runs a page without app.py;
    # the browser tour switches it on from the Report page, which no longer draws one itself)
    at = _app()
    assert [t.label for t in at.sidebar.toggle] == ["Presentation mode"]
    assert not any("presentation_toggle" in p.read_text(encoding="utf-8") for p in (Path(APP).parent / "pages").glob("[!_]*.py"))


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_cam_page_shows_the_demo_run() -> None:
    assert any(DEMO_ROOT.iterdir()), "a demo run ships in assets/demo_runs"
    at = _app()
    at.switch_page("pages/cam.py").run()
    assert not at.exception
    figs = _figures(at)
    assert figs, "the CAM grid is drawn"
    assert any(t.get("type") == "image" for t in figs[0]["data"])
    assert not at.error


@pytest.mark.slow
def test_train_page_runs_a_tiny_training() -> None:
    at = _app()
    at.switch_page("pages/train.py").run()
    at.number_input[0].set_value(1)  # epochs
    advanced_limit = [n for n in at.number_input if "Training images" in n.label][0]
    advanced_limit.set_value(512)
    at.button[0].click()  # the form's Train button
    at.run()
    assert not at.exception, at.exception
    rid = at.session_state["watch"]
    MANAGER.wait(rid, timeout=300)
    at.run()
    assert not at.exception
    assert any("complete" in s.value for s in at.success), [e.value for e in at.error]
    assert _figures(at), "live curves are drawn"


def test_train_form_starts_from_the_data_sets_recipe() -> None:
    at = _app()
    at.switch_page("pages/train.py").run()

    def widget(kind: str, label: str):
        return next(w for w in getattr(at, kind) if w.label.startswith(label))

    assert widget("selectbox", "Model").value == "lenet_gap"
    assert widget("checkbox", "Fresh layouts").disabled  # mnist is a fixed data set
    widget("selectbox", "Data set").set_value("cluttered-mnist").run()
    assert not at.exception, at.exception
    # the cluttered recipe: the wider network, new clutter every epoch, no shift
    assert widget("selectbox", "Model").value == "lenet_gap_plus"
    fresh = widget("checkbox", "Fresh layouts")
    assert fresh.value and not fresh.disabled
    assert widget("number_input", "Random shift").value == 0
    notes = " ".join(m.value for m in at.markdown)
    assert "lenet_gap_plus" in notes and "Fresh clutter" in notes  # why these defaults
    # a DA method on MNIST -> MNIST-M-style: the shift's own layer of the recipe, and why
    widget("selectbox", "Data set").set_value("mnist").run()
    widget("selectbox", "Method").set_value("dann").run()
    assert not at.exception, at.exception
    assert widget("selectbox", "Target domain").value == "mnist-m"
    assert widget("number_input", "Invert source intensities").value == 0.5
    assert widget("checkbox", "Precise BatchNorm").value
    notes = " ".join(m.value for m in at.markdown)
    assert "dark stroke on a light ground" in notes and "domain classifier" in notes


def test_train_page_offers_method_parameters_as_typed_widgets() -> None:
    """A choice is a select box of readable labels, never a free-text field; numbers keep their range."""
    at = _app()
    at.switch_page("pages/train.py").run()
    next(w for w in at.selectbox if w.label == "Method").set_value("dann").run()
    assert not at.exception, at.exception
    reads = next(w for w in at.selectbox if w.label == "Domain classifier reads")
    assert reads.value == "features" and "flattened conv maps (as in the paper)" in reads.options
    assert [t.label for t in at.text_input] == ["Run name (optional)"]
    hidden = next(w for w in at.number_input if w.label == "Hidden width (units)")
    assert (hidden.min, hidden.max, hidden.value) == (1, 4096, 100)
    next(w for w in at.selectbox if w.label == "Method").set_value("dan").run()
    weights = next(w for w in at.selectbox if w.label == "Kernel weights")
    assert weights.value == "uniform" and len(weights.options) == 2
    next(w for w in at.selectbox if w.label == "Method").set_value("coral").run()
    assert any(c.label == "Also match the means" and c.value for c in at.checkbox)


def test_distances_page_draws_a_class_matrix(tmp_path, monkeypatch, _background_queue) -> None:
    import base64

    import numpy as np

    from pages import _shared
    from tests.conftest import TINY
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import train

    root = tmp_path / "runs"  # where _isolated points VIZCORE_RUNS
    assert list(train(TINY, RunStore(root, demo_root=None)))[-1].status == "complete"
    # RunStore() reads VIZCORE_RUNS when vizcore.store.runs is first imported, so point the pages' store here too
    monkeypatch.setattr(_shared, "store", lambda: RunStore(root))
    at = _app()
    at.switch_page("pages/distances.py").run()
    while _background_queue.run_next() is not None:  # a new run: its analysis, then its matrix, off the click
        at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    heat = next(t for t in _figures(at)[0]["data"] if t["type"] == "heatmap")
    z = heat["z"]
    if isinstance(z, dict):  # plotly >= 6 sends arrays as base64 with a dtype and a shape
        shape = [int(s) for s in str(z["shape"]).split(",")] if "shape" in z else [-1]
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    z = np.asarray(z, dtype=float)
    assert z.shape == (10, 10) and np.isfinite(z).all()
    assert len(heat["text"]) == 10, "the values are written in the cells"


def test_distances_page_ranks_class_pairs_under_two_metrics() -> None:
    from vizcore.store.runs import RunStore
    from vizcore.views import distances as dv
    from vizcore.views import matrices as mx

    at = _app()
    at.switch_page("pages/distances.py").run()
    at.session_state["dist_view"] = "Two metrics"
    at.run()
    next(w for w in at.selectbox if w.label == "Second metric").set_value("wasserstein_exact").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rho = next(m for m in at.metric if m.label.startswith("Spearman"))
    # the number on the page is the rank correlation of the two matrices the views compute
    run_id = at.session_state["dist_run"]
    run = RunStore().get(run_id)
    layer = dv.default_layer(dv.layer_choices(run))
    first = dv.class_matrix(run, "source", "test", layer, dv.DistanceSettings("mmd", {}, 100, 200))
    second = dv.class_matrix(run, "source", "test", layer, dv.DistanceSettings("wasserstein_exact", {}, 100, 50))
    assert rho.value == f"{mx.rank_agreement(first, second).rho:.2f}"
    fig = _figures(at)[0]
    assert "Spearman ρ" in fig["layout"]["title"]["text"]
    assert len(at.dataframe) == 1


def test_embeddings_page_draws_before_and_after_panels(tmp_path, monkeypatch, _background_queue) -> None:
    import torch

    from tests.conftest import TINY
    from vizcore.models.architecture import build_model, resolve_input_shape
    from vizcore.store.runs import RunStore

    store = RunStore(tmp_path / "runs", demo_root=None)  # where _isolated points VIZCORE_RUNS
    for seed in (0, 1):  # two untrained (seeded) networks are enough to lay out features
        cfg = TINY.replace(seed=seed, input_shape=resolve_input_shape(TINY))
        run = store.create(cfg)
        torch.manual_seed(seed)
        run.save_weights(build_model(cfg))
        run.set_status("complete")
    monkeypatch.setattr("vizcore.embed.methods.start_umap_warmup_thread", lambda *a, **k: None)  # no numba in tests
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["emb_method"] = "pca"  # fast
    at.run()
    at.switch_page("pages/embeddings.py").run()
    while _background_queue.run_next() is not None:  # the pair of layouts is computed off the click
        at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    fig = _figures(at)[0]
    panels = {t.get("xaxis") for t in fig["data"] if t.get("customdata")}
    assert panels == {"x", "x2"}, "two scatter panels, before and after"
    assert any("Class silhouette" in str(t.value) for t in at.table), "the numbers table is shown"


def test_the_first_page_does_not_import_torch() -> None:
    # torch costs over a second to import; the Overview only lists runs (target: interactive in 5 s)
    import subprocess
    import sys

    code = "import sys, pages._shared, vizcore.app.warmup; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(APP).parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_overview_lists_the_demo_runs_with_accuracies_in_percent() -> None:
    at = _app()
    table = at.dataframe[0].value.set_index("run id")
    assert table.loc["demo-lenet-gap-mnist", "source acc"] == "97.8%"  # summary.json: 0.978
    assert table.loc["demo-dann-mnist-to-mnist-m", "target acc"] == "63.8%"  # 0.6385
    assert table.loc["demo-lenet-gap-mnist", "target acc"] == "—"  # no target: the one mark for missing


def _two_pages() -> None:
    import streamlit as st  # from_function runs this body on its own

    from pages._shared import remember_widgets

    remember_widgets()
    if st.session_state.get("page", "distances") == "distances":
        st.selectbox("Metric", ["mmd", "coral"], key="dist_metric")
        st.download_button("CSV", "x", key="dist_matrix_csv")  # not an input: never written back
    else:
        st.write("another page")


def test_a_page_keeps_its_choices_after_a_visit_to_another() -> None:
    at = AppTest.from_function(_two_pages).run()
    at.selectbox[0].set_value("coral").run()
    at.session_state["page"] = "cam"
    at.run()
    assert not at.selectbox  # the widget is not drawn on the other page...
    at.session_state["page"] = "distances"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "coral"  # ...and its choice is back when one returns


# the new methods from the Train page: (method, parent or teacher picked from the demo runs)
NEW_METHODS = [
    ("cdan", None),
    ("adda", ("Start from (parent run)", "demo-source_only-mnist-to-mnist-m")),
    ("finetune", ("Start from (parent run)", "demo-source_only-mnist-to-mnist-m")),
    ("distill", ("Teacher run", "demo-lenet-gap-mnist")),
    ("instance_spread", None),
]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "pick"), NEW_METHODS)
def test_train_page_trains_each_new_method(method: str, pick: tuple[str, str] | None, monkeypatch) -> None:
    # the views' analysis after training is another test's subject (it waits on the test's queue)
    at = _app()
    at.switch_page("pages/train.py").run()
    next(w for w in at.selectbox if w.label == "Method").set_value(method).run()
    assert not at.exception, at.exception
    if pick is not None:
        label, rid = pick
        next(w for w in at.selectbox if w.label == label).set_value(rid).run()
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    next(n for n in at.number_input if "Training images" in n.label).set_value(256)
    if method == "finetune":
        assert next(n for n in at.number_input if n.label == "Frozen conv blocks").value == 2
        next(n for n in at.number_input if n.label == "Labelled target images per class").set_value(2)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rid = at.session_state["watch"]
    MANAGER.wait(rid, timeout=300)
    at.run()
    assert any("complete" in s.value for s in at.success), [e.value for e in at.error]
    from vizcore.store.runs import RunStore

    cfg = RunStore().get(rid).config()
    assert cfg.method == method
    if pick is not None:
        assert (cfg.init_from or cfg.teacher) == pick[1]
    if method == "distill":
        assert cfg.widths == (8, 16)
    if method == "finetune":
        assert (cfg.freeze, cfg.target_labels_per_class) == (2, 2)


def test_sets_not_on_this_machine_are_marked_and_explained(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIZCORE_DATA", str(tmp_path / "no-data"))  # no torchvision set here
    at = _app()
    at.switch_page("pages/train.py").run()
    source = next(s for s in at.selectbox if s.label.startswith("Data set"))
    assert "usps (not on this machine)" in source.options and "mnist" in source.options
    source.set_value("usps").run()
    assert not at.exception
    assert any("usps is not on this machine" in w.value for w in at.warning)


def test_page_helpers_look_up_the_store_at_each_call() -> None:
    """pages/_*.py are imported once per process, unlike the pages themselves: a helper that bound
    ``store`` at its import kept the first store for good (a replaced one was never seen)."""
    import ast

    from tests.paths import ROOT

    for path in sorted((ROOT / "pages").glob("_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "pages._shared" and node.col_offset == 0:
                assert "store" not in {a.name for a in node.names}, f"{path.name} binds pages._shared.store at import"
