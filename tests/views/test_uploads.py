"""Uploaded checkpoints as runs: the architecture inferred and checked, saving, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save

from tests.store.test_checkpoints import _st_bytes
from vizcore.data.domains import load_domain
from vizcore.explain.cam import class_activation_maps
from vizcore.models import create_model, list_models
from vizcore.store.checkpoints import read_checkpoint
from vizcore.store.runs import CheckpointError, RunStore
from vizcore.views.uploads import (
    Architecture,
    guess_architecture,
    infer_architectures,
    load_checked,
    predict,
    save_uploaded_run,
    standardize_check,
)


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



def test_dataparallel_prefix_is_removed() -> None:
    model = create_model("lenet_gap")
    ckpt = read_checkpoint(
        save({f"module.{k}": v for k, v in model.state_dict().items()}), "dp.safetensors"
    )
    assert ckpt.fmt == "safetensors" and set(ckpt.tensors) == set(model.state_dict())
    assert ckpt.notes == ("removed the 'module.' prefix that DataParallel adds",)



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
