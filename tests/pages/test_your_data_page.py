"""The Your data page, end to end: a folder typed on the page is inspected and registered, the
Train page offers it by its name and trains on it, and the CAM page shows the run by that name
with class names (not numbers) over its images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.app.jobs import MANAGER
from vizcore.store.datasets import read_registry
from vizcore.store.runs import RunStore

CLASSES = ("circle", "square")


def _shapes(root: Path, per_class: dict[str, int]) -> None:
    """``root/<split>/<class>/<i>.png``: a bright disc or square on black, 24x24 RGB."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    for split, n in per_class.items():
        for c in CLASSES:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cy, cx = rng.integers(8, 16, 2)
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < 25 if c == "circle" else (abs(yy - cy) < 5) & (abs(xx - cx) < 5)
                img = np.zeros((24, 24, 3), np.uint8)
                img[mask] = (200 + rng.integers(0, 55, 3)).astype(np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=180).run()


def test_the_page_inspects_a_folder_and_says_what_is_wrong(app: AppTest, tmp_path: Path) -> None:
    _shapes(tmp_path / "shapes", {"train": 6, "test": 2})
    (tmp_path / "shapes" / "test" / "circle" / "copy.png").write_bytes((tmp_path / "shapes" / "train" / "circle" / "0.png").read_bytes())
    (tmp_path / "shapes" / "train" / "square" / "bad.png").write_bytes(b"not a png")
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "shapes")).run()
    assert not app.exception, app.exception
    text = " ".join(m.value for m in [*app.markdown, *app.warning])
    assert "2 classes; 12 training images and 5 test images" in text
    assert "1 test image is byte-identical" in text and "1 file or link is not read" in text
    assert app.get("plotly_chart"), "the sample grid is drawn"
    assert not app.error, [e.value for e in app.error]


@pytest.mark.slow
def test_register_train_and_open_on_the_cam_page(app: AppTest, tmp_path: Path, _background_queue) -> None:
    _shapes(tmp_path / "shapes", {"train": 24, "test": 6})
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "shapes")).run()
    next(t for t in app.text_input if t.label == "Name").set_value("toy-shapes").run()
    app.button(key="data_register").click().run()
    assert not app.exception, app.exception
    assert any("Registered **toy-shapes**" in s.value for s in app.success), [e.value for e in app.error]
    domain = read_registry(tmp_path / "runs").domain("toy-shapes")

    app.button(key="data_train").click().run()  # "Train on it": the Train page, this folder as the source
    assert not app.exception, app.exception
    app.switch_page("pages/train.py").run()  # AppTest keeps to the page it was told (st.switch_page did it in the browser)
    source = next(w for w in app.selectbox if w.label.startswith("Data set"))
    assert source.value == domain and "toy-shapes" in source.options  # shown by its name
    next(n for n in app.number_input if n.label == "Epochs").set_value(1)
    next(b for b in app.button if b.label == "Train").click()
    app.run()
    assert not app.exception, app.exception
    rid = app.session_state["watch"]
    MANAGER.wait(rid, timeout=300)
    app.run()
    assert any("complete" in s.value for s in app.success), [e.value for e in app.error]
    cfg = RunStore().get(rid).config()
    assert cfg.source == domain and cfg.data_names == {domain: "toy-shapes"} and "toy-shapes" in cfg.label

    while _background_queue.run_next() is not None:  # the new run's views, prepared as after a training
        pass
    app.switch_page("pages/cam.py").run()
    assert not app.exception, app.exception
    run_picker = next(w for w in app.selectbox if w.label == "Run")
    assert "toy-shapes" in run_picker.format_func(run_picker.value)
    grid = json.loads(app.get("plotly_chart")[0].proto.spec)
    captions = [a["text"] for a in grid["layout"]["annotations"]]
    assert captions and all(("true circle" in t or "true square" in t) for t in captions), captions[:3]
    assert "toy-shapes" in grid["layout"]["title"]["text"]


def test_a_registered_folder_that_is_gone_is_marked_and_explained(app: AppTest, tmp_path: Path) -> None:
    import shutil

    from vizcore.store.datasets import register_folder

    _shapes(tmp_path / "shapes", {"train": 2, "test": 1})
    register_folder(tmp_path / "runs", "toy-shapes", tmp_path / "shapes")
    shutil.rmtree(tmp_path / "shapes")
    app.switch_page("pages/train.py").run()
    source = next(w for w in app.selectbox if w.label.startswith("Data set"))
    domain = f"folder:{(tmp_path / 'shapes').resolve()}"
    assert source.format_func(domain) == "toy-shapes (not on this machine)"
    source.set_value(domain).run()
    assert not app.exception, app.exception
    assert any(w.value.startswith("toy-shapes is not on this machine") and "does not exist" in w.value for w in app.warning)
    assert not [b for b in app.button if b.label == "Train"]  # nothing to start


def test_the_class_map_chosen_here_is_the_train_pages_for_that_pair(app: AppTest, tmp_path: Path) -> None:
    _shapes(tmp_path / "shapes", {"train": 2, "test": 1})
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "shapes")).run()
    next(w for w in app.selectbox if w.label.startswith("Source domain")).set_value("mnist").run()
    assert any("They pair under this class map" in i.value for i in app.info), [e.value for e in app.error]
    next(t for t in app.text_input if t.label == "Name").set_value("toy-shapes").run()
    app.button(key="data_register").click().run()
    domain = read_registry(tmp_path / "runs").domain("toy-shapes")

    app.switch_page("pages/train.py").run()
    next(w for w in app.selectbox if w.label == "Method").set_value("dann").run()
    next(w for w in app.selectbox if w.label.startswith("Data set")).set_value("mnist").run()
    next(w for w in app.selectbox if w.label.startswith("Target domain")).set_value(domain).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert any(c.value == "Class map (from the Your data page): circle→0, square→1" for c in app.caption)


def test_the_folder_typed_is_still_there_after_a_visit_to_another_page(app: AppTest, tmp_path: Path) -> None:
    _shapes(tmp_path / "shapes", {"train": 2, "test": 1})
    app.switch_page("pages/data.py").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "shapes")).run()
    app.switch_page("pages/home.py").run()
    app.switch_page("pages/data.py").run()
    assert not app.exception, app.exception
    assert app.text_input(key="data_path").value == str(tmp_path / "shapes") and app.get("plotly_chart")


def test_a_missing_folder_is_one_line_and_a_registered_one_can_be_forgotten(app: AppTest, tmp_path: Path) -> None:
    from vizcore.store.datasets import register_folder

    app.switch_page("pages/data.py").run()
    app.text_input(key="data_path").set_value(str(tmp_path / "nowhere")).run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == [f"Could not show the folder: image folder {tmp_path / 'nowhere'} does not exist; "
                                            "make one sub-folder per class holding its images (the torchvision ImageFolder layout)"]
    _shapes(tmp_path / "shapes", {"train": 2, "test": 1})
    register_folder(tmp_path / "runs", "toy-shapes", tmp_path / "shapes")
    app.run()
    app.radio(key="data_way").set_value("A registered folder").run()
    app.button(key="data_forget").click().run()
    assert not app.exception, app.exception
    assert read_registry(tmp_path / "runs").folders == {} and (tmp_path / "shapes" / "train").is_dir()
