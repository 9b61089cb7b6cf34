"""The one-file HTML report: every section and figure, offline, presentation mode, comparisons."""

from __future__ import annotations

import re
import struct
from html.parser import HTMLParser

import numpy as np
import pytest
import streamlit as st
import torch
from plotly.offline import get_plotlyjs
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.core.config import TrainConfig
from vizcore.figures import CLASS_COLORS
from vizcore.store.checkpoints import read_checkpoint
from vizcore.store.runs import RunStore
from vizcore.views import report as rep
from vizcore.views import report_sections as sections
from vizcore.views.analysis import eval_domain
from vizcore.views.distances import DistanceSettings
from vizcore.views.export import figure_static, static_export_available
from vizcore.views.uploads import infer_architectures, save_uploaded_run

QUICK = rep.ReportOptions(embed_method="pca", embed_points=150, distance=DistanceSettings(n_per_class=40, n_perm=20))
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)


class _Tags(HTMLParser):
    """Every tag and attribute of a page (script bodies are data, not tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_offline(page: str) -> None:
    """Nothing in the file is fetched from elsewhere: no script/link/img/iframe pointing outside."""
    parser = _Tags()
    parser.feed(page)
    assert "<script src=" not in page.lower().replace(" ", "") and '<script src="http' not in page
    for tag, attrs in parser.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        for name, value in attrs.items():
            assert not (value and EXTERNAL.match(value)), (tag, name, value)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page.split("<script>", 1)[0])
    assert page.count(get_plotlyjs()[:200]) == 1, "plotly.js is inlined exactly once"


@pytest.fixture(scope="module")
def run_report(trained_run):
    report = rep.make_report([trained_run], QUICK)
    return report, report.to_html()


def test_report_has_every_section_and_figure(trained_run, run_report) -> None:
    report, page = run_report
    assert [s.key for s in report.sections] == list(rep.SECTIONS)
    for key in rep.SECTIONS:
        title, _ = rep.SECTIONS.get(key)
        assert f'<section id="{key}"><h2>{title}</h2>' in page
    assert "Could not make" not in page
    figures = {s.key: len(s.figures) for s in report.sections}
    # curves; CAM grid and mean CAM; the class matrix; the embedding
    assert figures == {"summary": 0, "setup": 0, "training": 1, "accuracy": 0, "cam": 2, "faithfulness": 0, "distances": 1,
                       "embeddings": 1, "validators": 0}
    assert page.count("Plotly.newPlot(") == len(report.figures) == 5
    keys = [s.key for s in report.sections]
    assert keys[0] == "summary" and keys[-1] == "setup"  # one screen first; the raw configuration last
    summary = page[page.index('<section id="summary">'):page.index('<section id="training">')]
    assert f"{trained_run.summary()['source_acc']:.1%}" in summary and trained_run.run_id in summary
    for n, fig in enumerate(report.figures, start=1):
        assert re.search(rf'id="fig-\w+-{n}"', page)
        assert fig.layout.font.size == 13
    cfg = trained_run.config()
    assert trained_run.run_id in page and eval_domain(cfg, "source").provenance in page


def test_report_numbers_match_the_model(trained_run, run_report) -> None:
    _, page = run_report
    dom = eval_domain(trained_run.config(), "source")
    with torch.no_grad():
        preds = trained_run.load_model()(dom.images).argmax(1)
    acc = (preds == dom.labels).float().mean().item()
    assert f"<td>{acc:.1%}</td>" in page
    for k in range(10):  # per-class rows, each with its class colour
        sel = dom.labels == k
        assert f"background:{CLASS_COLORS[k]}\"></span>{k}</td><td>{(preds[sel] == k).float().mean().item():.1%}" in page
    assert "Class silhouette" in page and "Trustworthiness of the 2-D layout" in page


def test_report_opens_offline(run_report) -> None:
    assert_offline(run_report[1])


def test_presentation_mode_enlarges_every_figure(trained_run) -> None:
    report = rep.make_report([trained_run], rep.ReportOptions(**{**QUICK.__dict__, "presentation": True}))
    assert report.figures and all(f.layout.font.size == 18 for f in report.figures)
    assert "--fs:20px" in report.to_html()


def test_a_comparison_with_an_uploaded_run(trained_run, store: RunStore) -> None:
    """Before = the trained run; after = its weights uploaded and evaluated on other data (UCI digits)."""
    ckpt = read_checkpoint((trained_run.path / "model.safetensors").read_bytes(), "same.safetensors")
    after = save_uploaded_run(store, ckpt, infer_architectures(ckpt.tensors)[0].arch, "uci-digits", eval_limit=50)
    report = rep.make_report([trained_run, after], QUICK)
    page = report.to_html()
    assert "before: " in page and "after: uploaded file same.safetensors" in page
    assert "no training records (an uploaded checkpoint" in page
    assert "Weights: uploaded file same.safetensors" in page
    titles = [f.layout.title.text for f in report.figures]
    assert "after − before, source" in titles  # the difference of the two class matrices
    embeddings = next(s for s in report.sections if s.key == "embeddings")
    assert "Could not make this section: the two runs were trained on different source data" in "".join(
        b for b in embeddings.blocks if isinstance(b, str)
    )
    assert page.count("Could not make") == 1  # every other section is complete


def _fake_features(run, which: str, split: str = "test", layer: str = "gap") -> dict[str, np.ndarray]:
    """Small seeded features: ten classes, the target domain shifted (after adaptation: less)."""
    rng = np.random.default_rng(len(which) + 10 * ("dann" in run.config().method))
    y = np.repeat(np.arange(10), 50)
    shift = (0.0 if which == "source" else 3.0) * (0.2 if "dann" in run.config().method else 1.0)
    x = np.eye(10, 16)[y] * 4 + rng.normal(size=(len(y), 16)) + shift
    return {"x": x.astype(np.float32), "y": y, "pred": y}


def _fake_cams(run, which: str, mode: str = "predicted", split: str = "test") -> dict[str, np.ndarray]:
    y = np.repeat(np.arange(10), 4)
    probs = np.full((len(y), 10), 0.05, dtype=np.float32)
    probs[np.arange(len(y)), y] = 0.55
    maps = np.random.default_rng(0).random((len(y), 28, 28)).astype(np.float16)
    return {"maps": maps, "probs": probs, "labels": y, "class_idx": y}


def test_an_adaptation_comparison_shows_target_views(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target-domain parts (cross matrix, A-distance, both domains in the scatter), on small fake features."""
    import vizcore.views.distances as dv
    import vizcore.views.embeddings as ev

    for module in (sections, dv, ev):
        monkeypatch.setattr(module, "feature_arrays", _fake_features)
    monkeypatch.setattr(sections, "cam_analysis", _fake_cams)
    rng = np.random.default_rng(0)
    monkeypatch.setattr(sections, "cam_maps", lambda run, side, idx, cls: rng.random((len(idx), 28, 28)))
    monkeypatch.setattr(sections, "eval_images", lambda run, side, idx: rng.random((len(idx), 3, 28, 28)))
    monkeypatch.setattr(sections, "mean_cams", lambda run, side, mode: rng.random((10, 28, 28)))
    runs = []
    for method in ("source_only", "dann"):
        run = store.create(TrainConfig(source="mnist", target="mnist-m", method=method, input_shape=(3, 28, 28)))
        run.append_metrics([{"kind": "step", "step": s, "epoch": 1, "total_steps": 4,
                             "values": {"loss": 1 / s, "train_acc": s / 4}} for s in range(1, 5)])  # fmt: skip
        run.set_status("complete")
        runs.append(run)
    report = rep.make_report(runs, QUICK)
    page = report.to_html()
    assert "Could not make" not in page
    titles = [f.layout.title.text for f in report.figures]
    assert any("source vs target classes" in t for t in titles) and "after − before, target" in titles
    embed = next(s for s in report.sections if s.key == "embeddings")
    (scatter,) = embed.figures
    assert [a.text for a in scatter.layout.annotations][:2] == ["before", "after"]
    points = [t for t in scatter.data if t.x is not None and t.x[0] is not None]
    assert {sym for t in points for sym in t.marker.symbol} == {"circle", "x"}  # source and target symbols
    assert {t.marker.color for t in points} == set(CLASS_COLORS)  # the app's class palette
    table = re.search(r'<table class="numbers">.*?</table>', page).group(0)
    assert "Proxy A-distance" in table and "kNN target accuracy" in table
    a_dist = re.search(r"Proxy A-distance[^<]*</td><td>([-\d.]+)</td><td>([-\d.]+)</td>", table)
    assert float(a_dist.group(2)) < float(a_dist.group(1)), "the smaller shift after adaptation is measured"
    assert_offline(page)


def test_report_page_builds_a_download(trained_run, monkeypatch: pytest.MonkeyPatch) -> None:
    import pages._shared as shared

    monkeypatch.setattr(shared, "store", lambda: RunStore(trained_run.path.parent, demo_root=None))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/report.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="report_embed").set_value("pca")
    at.button[0].click().run()  # Build report
    assert not at.exception, at.exception
    (download,) = [b for b in at.get("download_button")]
    assert "Download report" in download.proto.label
    assert any("self-contained" in c.value for c in at.caption)


@pytest.mark.skipif(not static_export_available(), reason="no Chrome/Chromium for kaleido")
def test_static_export_gives_real_png_and_svg(run_report) -> None:
    fig = run_report[0].figures[0]
    png = figure_static(fig, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    width, height = struct.unpack(">II", png[16:24])  # IHDR: scale 2 doubles the layout size
    assert (width, height) == (2 * 700, 2 * fig.layout.height)
    svg = figure_static(fig, "svg").decode()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg and "Loss" in svg
    assert figure_static(fig, "png")[:8] == png[:8]  # again, through the running export server
    with pytest.raises(ValueError, match="unknown format"):
        figure_static(fig, "gif")
