"""torchvision backbones as GAP networks: stems, exact CAM, ImageNet weights (offline too), uploads."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from vizcore.core.config import TrainConfig
from vizcore.models import create_model
from vizcore.models import torchvision_nets as tv
from vizcore.models.architecture import build_model, build_network, pretrained_models
from vizcore.store.checkpoints import read_checkpoint
from vizcore.store.runs import RunStore
from vizcore.views.uploads import infer_architectures, load_checked, save_uploaded_run


@pytest.mark.parametrize(("name", "stem", "size", "side"), [
    ("resnet18", "small", 28, 4),      # stride 1 stem, no max-pool: 28 -> 28 -> 14 -> 7 -> 4
    ("resnet18", "standard", 64, 2),   # torchvision's stem: stride 32 overall
    ("mobilenet_v3_small", "small", 32, 2),
    ("mobilenet_v3_small", "standard", 64, 2),
])  # fmt: skip
def test_the_stem_sets_the_conv_map_size_and_auto_picks_by_input_size(name: str, stem: str, size: int,
                                                                       side: int) -> None:  # fmt: skip
    model = create_model(name, num_classes=4, in_channels=1, stem=stem).eval()
    with torch.no_grad():
        conv = model.forward_features(torch.rand(2, 1, size, size)).conv
    assert conv.shape[-2:] == (side, side)
    assert create_model(name, input_size=size).stem == stem
    with pytest.raises(ValueError, match="unknown stem"):
        create_model(name, stem="huge")


def test_a_config_builds_the_backbone_for_its_input_and_never_refetches_a_runs_weights(monkeypatch) -> None:
    cfg = TrainConfig(source="mnist", model="resnet18", pretrained=True)
    calls = []
    monkeypatch.setattr(tv, "imagenet_state", lambda arch: calls.append(arch) or {})
    assert build_model(cfg).stem == "small" and calls == ["resnet18"]
    build_model(cfg, pretrained=False)  # what a run's load_model does: its own weights follow
    assert calls == ["resnet18"]
    assert set(pretrained_models()) == {"resnet18", "mobilenet_v3_small"}
    with pytest.raises(ValueError, match="lenet_gap has no pretrained weights"):
        build_network("lenet_gap", num_classes=10, in_channels=1, pretrained=True)


def _offline(monkeypatch: pytest.MonkeyPatch, hub: Path) -> None:
    from torchvision.models import WeightsEnum

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_network)


def test_pretrained_offline_says_the_weights_cannot_be_fetched(monkeypatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path / "hub")
    with pytest.raises(tv.PretrainedUnavailable, match="not in the torch hub cache .* cannot be downloaded"):
        create_model("resnet18", pretrained=True)


def test_pretrained_weights_are_read_from_the_hub_cache(monkeypatch, tmp_path: Path) -> None:
    from torchvision.models import ResNet18_Weights, resnet18

    _offline(monkeypatch, tmp_path / "hub")  # the cache must be enough: no network is asked
    torch.manual_seed(3)
    imagenet = resnet18().state_dict()
    cached = tmp_path / "hub" / "checkpoints" / Path(ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.save(imagenet, cached)
    grey = create_model("resnet18", in_channels=1, stem="standard", pretrained=True, num_classes=5)
    state = grey.state_dict()
    assert torch.equal(state["features.4.1.conv2.weight"], imagenet["layer4.1.conv2.weight"])
    assert torch.equal(state["features.0.1.running_var"], imagenet["bn1.running_var"])
    # a grey 7x7 stem starts from the RGB filters summed; the 5-class head from scratch
    assert torch.allclose(state["features.0.0.weight"], imagenet["conv1.weight"].sum(1, keepdim=True))
    assert state["fc.weight"].shape == (5, 512)
    small = create_model("resnet18", in_channels=1, stem="small", pretrained=True)
    assert small.state_dict()["features.0.0.weight"].shape == (64, 1, 3, 3)  # kept from scratch
    assert torch.equal(small.state_dict()["features.1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_a_backbone_state_dict_round_trips_through_the_upload_path(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).eval()
    data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    ckpt = read_checkpoint(data, f"{name}.safetensors")
    best = infer_architectures(ckpt.tensors)[0]
    assert best.fits and best.arch.model == name and best.arch.in_channels == 1 and best.arch.num_classes == 10
    loaded = load_checked(ckpt.tensors, best.arch)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    run = save_uploaded_run(RunStore(tmp_path / "runs", demo_root=None), ckpt, best.arch, "mnist", eval_limit=16)
    with torch.no_grad():
        torch.testing.assert_close(run.load_model()(x), model(x))


def test_a_backbone_trains_with_its_first_blocks_frozen(tmp_path: Path) -> None:
    """The training loop runs a torchvision backbone; freeze=1 keeps the parent's stem
    bit-identical and trains the rest (the loop asks every model for its conv blocks: both
    backbones get them from their shared base, so the smaller one stands for both)."""
    name = "mobilenet_v3_small"
    from vizcore.train.loop import train

    store = RunStore(tmp_path / "runs", demo_root=None)
    cfg = TrainConfig(source="mnist", model=name, epochs=1, batch_size=16, train_limit=48, test_limit=16,
                      lr=0.01, schedule="constant", device="cpu")  # fmt: skip
    parent = list(train(cfg, store))[-1]
    assert parent.status == "complete", parent.message
    end = list(train(cfg.replace(init_from=parent.run_id, freeze=1, seed=1), store))[-1]
    assert end.status == "complete", end.message
    start = store.get(parent.run_id).load_model().state_dict()  # frozen random weights would never learn
    after = store.get(end.run_id).load_model().state_dict()
    stem = [k for k in start if k.startswith("features.0.") and start[k].is_floating_point()]
    assert stem and all(torch.equal(start[k], after[k]) for k in stem)
    assert not torch.equal(start["fc.weight"], after["fc.weight"])
