"""The Upload page, headless: checks, saves and predicts; explains every bad file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from tests.data.test_prepare import NOISE, _declaring, _encoded, _paper_photo
from tests.paths import APP
from tests.store.test_checkpoints import (
    F32_2x3,
    _header_length,
    _pt_bytes,
    _saved_with_header_length,
    _st_file,
    _WritesAFile,
)
from vizcore.data.domains import load_domain
from vizcore.store.checkpoints import read_checkpoint
from vizcore.store.runs import RunStore
from vizcore.views.uploads import (
    infer_architectures,
    save_uploaded_run,
)

# --------------------------------------------------------------------------- the page, headless


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AppTest, RunStore]:
    import pages._shared as shared

    s = RunStore(tmp_path / "runs", demo_root=None)
    monkeypatch.setattr(shared, "store", lambda: s)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/upload.py").run()
    assert not at.exception, at.exception
    return at, s


def test_upload_page_checks_saves_and_predicts(page, trained_run, tmp_path: Path) -> None:
    at, s = page
    marker = tmp_path / "pwned"
    at.file_uploader(key="ckpt_upload").set_value(("evil.pt", _pt_bytes({"x": _WritesAFile(marker)}), "application/octet-stream")).run()
    assert not at.exception and not marker.exists()
    assert any("refused evil.pt" in e.value for e in at.error), [e.value for e in at.error]

    data = (trained_run.path / "model.safetensors").read_bytes()
    at.file_uploader(key="ckpt_upload").set_value(("theirs.safetensors", data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert any("Recognised" in m.value for m in at.success)
    [b for b in at.button if b.label == "Save as run"][0].click().run()
    assert not at.exception, at.exception
    assert any("Saved as run" in m.value for m in at.success), [e.value for e in at.error]
    (run,) = s.list()
    assert run.label == "uploaded file theirs.safetensors" and run.status == "complete"

    digit = (load_domain("mnist", "test", limit=1).images[0, 0] * 255).byte().numpy()
    at.file_uploader(key="img_upload").set_value([("photo.jpg", _paper_photo(digit), "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "the CAM of the uploaded image is drawn"
    assert any("inverted" in m.value for m in at.markdown)


def test_upload_page_explains_every_bad_file(page, trained_run, tmp_path: Path) -> None:
    """Each hostile file gets a message naming it on the page, never a traceback."""
    at, s = page
    theirs = read_checkpoint((trained_run.path / "model.safetensors").read_bytes(), "m.safetensors")
    save_uploaded_run(
        s, theirs, infer_architectures(theirs.tensors)[0].arch, "mnist", eval_limit=50
    )
    at.run()  # the Images tab predicts with that run
    grey16 = np.linspace(0, 65_535, 28 * 28).astype(np.uint16).reshape(28, 28)
    images = {
        "bomb.png": (
            _declaring(_encoded(NOISE), 20_000, 20_000),
            "bomb.png is refused before decoding",
        ),
        "wide.jpg": (
            _declaring(_encoded(NOISE, "JPEG"), 8000, 8000),
            "wide.jpg is refused before decoding",
        ),
        "cut.png": (_encoded(NOISE)[:400], "cut.png is truncated or damaged"),
    }
    for name, (data, words) in images.items():
        at.file_uploader(key="img_upload").set_value([(name, data, "image/png")]).run()
        assert not at.exception, at.exception
        assert any(words in e.value for e in at.error), (name, [e.value for e in at.error])
    at.file_uploader(key="img_upload").set_value(
        [("depth.png", _encoded(grey16), "image/png")]
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart") and any("16-bit grey to 8 bits" in m.value for m in at.markdown)

    marker = tmp_path / "pwned"
    checkpoints = {
        "entry.safetensors": (
            _st_file({"a": 1}),
            "entry.safetensors is not a usable safetensors file",
        ),
        "offsets.safetensors": (
            _st_file({"a": {**F32_2x3, "data_offsets": "xx"}}),
            "has data_offsets 'xx'",
        ),
        "dtype.safetensors": (_st_file({"a": {**F32_2x3, "dtype": "F4"}}), "has dtype 'F4'"),
        "model.pt": (_pt_bytes(theirs.tensors), "refused model.pt: it is a torch.save zip"),
        "raw.bin": (
            pickle.dumps(_WritesAFile(marker), protocol=2),
            "refused raw.bin: it is a pickle",
        ),
        "notes.bin": (b"hello, not weights", "notes.bin is not a checkpoint format vizcore reads"),
    }
    for name, (data, words) in checkpoints.items():
        at.file_uploader(key="ckpt_upload").set_value(
            (name, data, "application/octet-stream")
        ).run()
        assert not at.exception, at.exception
        assert any(words in e.value for e in at.error), (name, [e.value for e in at.error])
    assert not marker.exists()

    shortest = _header_length(save(theirs.tensors, metadata={"note": ""}))
    first_0x80 = next(n for n in range(shortest, 1 << 16) if n % 256 == 0x80)
    data = _saved_with_header_length(theirs.tensors, first_0x80)
    at.file_uploader(key="ckpt_upload").set_value(
        ("0x80.safetensors", data, "application/octet-stream")
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Recognised" in m.value for m in at.success)
