"""Outside checkpoints and images: safe reading, precise refusals, inference, runs, preprocessing."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from vizcore.cam import class_activation_maps
from vizcore.data import load_domain
from vizcore.models import create_model, list_models
from vizcore.runs import CheckpointError, RunStore
from vizcore.uploads import (
    Architecture,
    ImageOptions,
    guess_architecture,
    infer_architectures,
    load_checked,
    pickle_globals,
    predict,
    prepare_image,
    read_checkpoint,
    save_uploaded_run,
    standardize_check,
)

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _st_bytes(model: torch.nn.Module) -> bytes:
    return save({k: v.detach().contiguous() for k, v in model.state_dict().items()})


def _pt_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _WritesAFile:
    """A pickle payload that, if ever loaded unsafely, creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("kind", ["zip", "pickle-v2", "pickle-v4", "named-safetensors"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"fc.weight": torch.zeros(2, 2), "evil": _WritesAFile(marker)}
    data = {
        "zip": lambda: _pt_bytes(payload),
        "pickle-v2": lambda: pickle.dumps(payload, protocol=2),
        "pickle-v4": lambda: pickle.dumps(payload, protocol=4),
        "named-safetensors": lambda: _pt_bytes(payload),
    }[kind]()
    name = "model.safetensors" if kind == "named-safetensors" else "model.pt"
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(data, name)
    msg = str(e.value)
    assert "refused" in msg and "nothing" in msg and "executed" in msg
    assert "system" in msg, msg  # the call it would make is named (posix.system / nt.system)
    assert not marker.exists()


def test_pickle_globals_are_read_without_running() -> None:
    assert any(g.endswith(".system") for g in pickle_globals(pickle.dumps(_WritesAFile(Path("/x")))))
    assert pickle_globals(_pt_bytes({"a": torch.zeros(1)})) == [
        g for g in pickle_globals(_pt_bytes({"a": torch.zeros(1)})) if g.startswith(("torch.", "collections."))
    ]


def test_truncated_checkpoints_say_so() -> None:
    model = create_model("lenet_gap")
    data = _st_bytes(model)
    with pytest.raises(CheckpointError, match=r"truncated: tensor \S+ \(.*\) ends at byte"):
        read_checkpoint(data[:-50], "m.safetensors")
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(data[:20], "m.safetensors")
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        read_checkpoint(_pt_bytes(model.state_dict())[:3000], "m.pt")
    with pytest.raises(CheckpointError, match="neither safetensors nor a PyTorch file"):
        read_checkpoint(b"hello world, not weights", "m.pt")


def test_wrong_architecture_names_each_tensor_and_both_shapes() -> None:
    state = read_checkpoint(_st_bytes(create_model("lenet_gap", in_channels=3, num_classes=5)), "c.safetensors").tensors
    with pytest.raises(CheckpointError) as e:
        load_checked(state, Architecture("lenet_gap", num_classes=10, in_channels=1), expected_classes=10)
    msg = str(e.value)
    assert "number of classes: the checkpoint has 5 (fc.weight is (5, 64)), 10 were chosen" in msg
    assert "features.0.0.weight: checkpoint has shape (32, 3, 5, 5), model expects (32, 1, 5, 5)" in msg
    assert "fc.weight: checkpoint has shape (5, 64), model expects (10, 64)" in msg
    plus = read_checkpoint(_st_bytes(create_model("lenet_gap_plus")), "p.safetensors").tensors
    with pytest.raises(CheckpointError, match=r"unexpected tensor features\.2\.0\.weight \(128, 64, 3, 3\)"):
        load_checked(plus, Architecture("lenet_gap"))


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize(("classes", "chans", "bott"), [(10, 1, 0), (7, 3, 16)])
def test_architecture_is_inferred_from_shapes(model: str, classes: int, chans: int, bott: int) -> None:
    original = create_model(model, num_classes=classes, in_channels=chans, bottleneck_dim=bott).eval()
    ckpt = read_checkpoint(_st_bytes(original), "m.safetensors")
    best = infer_architectures(ckpt.tensors)[0]
    assert best.fits and best.arch == Architecture(model, classes, chans, bott)
    assert guess_architecture(ckpt.tensors, model) == best.arch
    x = torch.rand(2, chans, 28, 28)
    torch.testing.assert_close(load_checked(ckpt.tensors, best.arch)(x), original(x))


def test_pytorch_state_dict_in_a_training_wrapper() -> None:
    model = create_model("lenet_gap")
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    ckpt = read_checkpoint(_pt_bytes(wrapped), "train.pt")
    assert ckpt.fmt == "pytorch" and set(ckpt.tensors) == set(model.state_dict())
    assert any("'state_dict'" in n for n in ckpt.notes) and any("module." in n for n in ckpt.notes)
    with pytest.raises(CheckpointError, match="not tensors: lr"):
        read_checkpoint(_pt_bytes({"fc.weight": torch.zeros(1), "lr": 0.1}), "x.pt")


def test_accepted_checkpoint_becomes_a_complete_run(store: RunStore, trained_run) -> None:
    data = (trained_run.path / "model.safetensors").read_bytes()
    ckpt = read_checkpoint(data, "their model.safetensors")
    arch = infer_architectures(ckpt.tensors)[0].arch
    with pytest.raises(ValueError, match="classes"):
        save_uploaded_run(store, ckpt, Architecture("lenet_gap", num_classes=5), "mnist")
    run = save_uploaded_run(store, ckpt, arch, "mnist", eval_limit=200)
    assert run.status()["status"] == "complete" and "uploaded file their model.safetensors" in run.status()["message"]
    assert run.config().name == "uploaded file their model.safetensors"
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []  # no partial folder left
    assert store.list()[0].run_id == run.run_id
    dom = load_domain("mnist", "test", limit=200)
    with torch.no_grad():
        logits = trained_run.load_model()(dom.images)
        torch.testing.assert_close(run.load_model()(dom.images), logits)
    expected = (logits.argmax(1) == dom.labels).float().mean().item()
    assert run.config().epochs == 0 and run.summary()["source_acc"] == pytest.approx(expected)


def test_standardisation_is_checked_both_ways(trained_run) -> None:
    """The flag has no tensors; both accuracies are shown so a user can tell how it was trained."""
    ckpt = read_checkpoint((trained_run.path / "model.safetensors").read_bytes(), "m.safetensors")
    arch = infer_architectures(ckpt.tensors)[0].arch
    acc = standardize_check(ckpt, arch, "mnist", limit=300)
    dom = load_domain("mnist", "test", limit=300)
    with torch.no_grad():
        direct = (trained_run.load_model()(dom.images).argmax(1) == dom.labels).float().mean().item()
    assert acc[arch.standardize] == pytest.approx(direct) and acc[not arch.standardize] is not None


def _paper_photo(digit: np.ndarray, size: tuple[int, int] = (240, 180)) -> bytes:
    """A 28x28 light-on-dark digit as a colour JPEG photo: dark ink on grey paper, off-centre."""
    w, h = size
    paper = np.full((h, w, 3), (205, 200, 190), dtype=np.float32)
    ink = np.asarray(Image.fromarray(digit).resize((112, 112), Image.BILINEAR), dtype=np.float32) / 255
    paper[30:142, 90:202] *= 1 - 0.8 * ink[..., None]
    buf = io.BytesIO()
    Image.fromarray(paper.astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_images_are_brought_to_the_model_input_and_say_how() -> None:
    digit = (load_domain("mnist", "test", limit=1).images[0, 0] * 255).byte().numpy()
    p = prepare_image(_paper_photo(digit), (1, 28, 28), "photo.jpg")
    assert p.tensor.shape == (1, 1, 28, 28) and p.inverted
    text = " ".join(p.steps)
    for words in ("JPEG 240x180", "grey", "inverted", "contrast", "cropped", "placed in 28x28 with its centre of mass"):
        assert words in text, p.steps
    x = p.tensor[0, 0]
    assert x[:3].max() < 0.1 and x.max() > 0.9  # light-on-dark like MNIST, empty margin
    kept = prepare_image(_paper_photo(digit), (1, 28, 28), "photo.jpg", ImageOptions(invert=False))
    assert not kept.inverted and kept.tensor[0, 0, :3].mean() > 0.5

    rgba = np.zeros((50, 40, 4), dtype=np.uint8)
    rgba[10:40, 18:22] = (0, 0, 0, 255)  # a black stroke on a transparent canvas
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    q = prepare_image(buf.getvalue(), (3, 32, 32), "drawing.png")
    assert q.tensor.shape == (1, 3, 32, 32) and not q.inverted
    assert any("transparent" in s for s in q.steps) and any("square" in s for s in q.steps)
    bmp = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(bmp, "BMP")
    with pytest.raises(ValueError, match="PNG or JPEG"):
        prepare_image(bmp.getvalue(), (1, 28, 28), "x.bmp")


def test_photographed_digits_come_back_like_mnist() -> None:
    """A digit printed dark on grey paper, photographed off-centre, is recovered close to the original."""
    dom = load_domain("mnist", "test", limit=30)
    corr = []
    for img in dom.images:
        p = prepare_image(_paper_photo((img[0] * 255).byte().numpy()), (1, 28, 28))
        corr.append(np.corrcoef(img[0].flatten(), p.tensor[0, 0].flatten())[0, 1])
    assert np.median(corr) > 0.8 and min(corr) > 0.4, np.round(corr, 2)


def test_predictions_are_the_models_softmax_and_cam(trained_run) -> None:
    model = trained_run.load_model()
    x = load_domain("mnist", "test", limit=6).images
    preds = predict(model, x)
    with torch.no_grad():
        p, k = model(x).softmax(1).topk(3)
    for i, pred in enumerate(preds):
        assert [c for c, _ in pred.top] == k[i].tolist()
        np.testing.assert_allclose([q for _, q in pred.top], p[i].numpy(), rtol=1e-5)
    raw = class_activation_maps(model, x).maps[0]
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(preds[0].cam, expected.numpy(), atol=1e-5)


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
