"""Tests for the training methods: registry, gradient reversal, transfer losses, short training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vizcore.core.config import TrainConfig
from vizcore.core.params import Param, defaults
from vizcore.methods import METHODS, create_method, list_methods
from vizcore.methods.dan import (
    kernel_scales,
    linear_time_terms,
    multi_kernel_mmd2,
    optimal_kernel_weights,
)
from vizcore.methods.dann import DANN, DOMAIN_INPUTS, dann_lambda
from vizcore.methods.grl import GradientReverseLayer, grad_reverse
from vizcore.methods.recipes import recommended_config
from vizcore.metrics.mmd import mmd2_torch
from vizcore.models import create_model
from vizcore.models.base import Features
from vizcore.store.runs import RunStore
from vizcore.train.loop import train

# the methods with a transfer loss on one joint forward pass (ADDA owns its step and needs a parent)
DA_METHODS = [m for m in list_methods() if METHODS.get(m).uses_target and not METHODS.get(m).requires]
# the methods one loss on labelled batches trains on its own (no parent, no teacher)
SUPERVISED = [m for m in list_methods() if METHODS.get(m).uses_labels and not METHODS.get(m).requires]
# Adversarial methods have no "zero" transfer loss: their domain loss sits at chance (ln 2) when
# the domains coincide, and drops below it once a domain classifier can tell them apart.
ADVERSARIAL = {"dann", "cdan"}
ADVERSARIAL_CASES = [("dann", {"input": r}) for r in DOMAIN_INPUTS] + [("cdan", {}), ("cdan", {"entropy": True})]
TINY_DA = TrainConfig(
    source="mnist",
    target="mnist-m",
    epochs=1,
    batch_size=32,
    train_limit=128,
    test_limit=64,
    bottleneck_dim=16,
    standardize=True,
    lr=0.01,
    schedule="dann",
    log_every=1,
)


def _features(n: int = 64, seed: int = 0, shift: float = 0.0) -> Features:
    """Random features of every layer; ``shift`` moves the mean and stretches the spread."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * (1 + shift) + shift

    return Features(conv=r(n, 32, 2, 2), gap=r(n, 32), bottleneck=r(n, 16), logits=r(n, 10))


def _method(name: str, **kwargs) -> torch.nn.Module:
    return create_method(name, trade_off=1.0, feature_dim=16, num_classes=10, **kwargs)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_method() -> None:
    names = list_methods()
    assert {"source_only", "ddc", "dan", "dann", "coral"} <= set(names)
    assert names[0] == "source_only"  # the baseline comes first in the Train page's list
    for name in names:
        cls = METHODS.get(name)
        assert cls.label and cls.description and "\n" not in cls.description
        assert isinstance(cls.extra_metrics, tuple)
        assert all(isinstance(p, Param) for p in cls.params)
        m = create_method(name, feature_dim=16)
        assert m.hparams == defaults(cls.params)


@pytest.mark.parametrize("name", list_methods())
def test_unknown_parameter_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="no parameter"):
        create_method(name, feature_dim=16, not_a_param=1)


# --------------------------------------------------------------------------- gradient reversal


@pytest.mark.parametrize("coeff", [0.0, 0.37, 1.0, 5.0])
def test_gradient_reversal_flips_and_scales_exactly(coeff: float) -> None:
    x = torch.randn(4, 7, requires_grad=True)
    g = torch.randn(4, 7)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    y.backward(g)
    assert torch.equal(x.grad, -coeff * g)

    x2 = x.detach().clone().requires_grad_(True)
    (GradientReverseLayer(coeff)(x2) * g).sum().backward()
    assert torch.equal(x2.grad, -coeff * g)


def test_gradient_reversal_leaves_the_layer_after_it_alone() -> None:
    """Only what lies before the reversal sees the flipped gradient."""
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(5, 3, requires_grad=True)
    lin(grad_reverse(x, 2.0)).sum().backward()
    w_rev, x_rev = lin.weight.grad.clone(), x.grad.clone()
    lin.zero_grad()
    x.grad = None
    lin(x).sum().backward()
    assert torch.equal(lin.weight.grad, w_rev)
    assert torch.equal(x_rev, -2.0 * x.grad)


# --------------------------------------------------------------------------- DANN schedule


def test_dann_lambda_schedule_matches_the_formula() -> None:
    for p in np.linspace(0, 1, 11):
        assert dann_lambda(float(p)) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-12)
    assert dann_lambda(0.0) == 0.0 and dann_lambda(1.0) > 0.9999
    m = DANN(trade_off=0.5, feature_dim=16)
    for p in (0.0, 0.1, 0.5, 1.0):
        _, logs = m.transfer_loss(_features(), _features(seed=1), p)
        assert logs["lambda"] == pytest.approx(0.5 * dann_lambda(p))


@pytest.mark.parametrize("lr_mult", [1.0, 10.0])
def test_dann_reverses_the_feature_gradient_by_lambda_p(lr_mult: float) -> None:
    """Features get -trade_off * lambda_p times the domain loss's gradient; the domain
    classifier gets trade_off * lr_mult times it."""
    m = DANN(trade_off=2.0, feature_dim=16, lr_mult=lr_mult).eval()  # no dropout: passes agree
    f_s, f_t = _features(seed=0), _features(seed=1, shift=1.0)
    p = 0.3

    def grads(reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        m.zero_grad()
        b = f_s.bottleneck.clone().requires_grad_(True)
        if reverse:
            loss, _ = m.transfer_loss(Features(f_s.conv, f_s.gap, b, f_s.logits), f_t, p)
            (m.lambda_at(p) * loss).backward()
        else:  # the plain domain-classification loss, no reversal
            logit = m.discriminator(torch.cat([b, f_t.bottleneck])).squeeze(1)
            label = torch.cat([torch.ones(len(b)), torch.zeros(len(f_t.bottleneck))])
            F.binary_cross_entropy_with_logits(logit, label).backward()
        return b.grad.clone(), m.discriminator[0].weight.grad.clone()

    (g_feat, g_disc), (plain_feat, plain_disc) = grads(True), grads(False)
    torch.testing.assert_close(g_feat, -2.0 * dann_lambda(p) * plain_feat)
    torch.testing.assert_close(g_disc, 2.0 * lr_mult * plain_disc)


# --------------------------------------------------------------------------- transfer losses


@pytest.mark.parametrize("name", [m for m in DA_METHODS if m not in ADVERSARIAL])
def test_discrepancy_is_zero_for_identical_batches_and_grows_with_shift(name: str) -> None:
    m = _method(name)
    # 256 rows: an unbiased MMD² estimate of identical batches is O(1/n) away from zero
    f = _features(256)
    same, _ = m.transfer_loss(f, _features(256), 0.5)
    small, _ = m.transfer_loss(f, _features(256, seed=1, shift=0.3), 0.5)
    large, _ = m.transfer_loss(f, _features(256, seed=1, shift=1.5), 0.5)
    assert torch.isfinite(same) and abs(float(same)) < 0.05 * float(large)
    assert float(large) > float(small) > abs(float(same))


@pytest.mark.parametrize(("name", "params"), ADVERSARIAL_CASES)
def test_domain_loss_is_at_chance_for_identical_batches_and_learns_a_shift(name: str, params: dict) -> None:
    torch.manual_seed(0)
    m = _method(name, **params).eval()  # without dropout the classifier is one function
    same, logs = m.transfer_loss(_features(), _features(), 0.5)
    m.train()
    assert same.item() >= math.log(2) - 1e-6  # one input, two labels: no classifier beats chance
    assert float(logs["domain_acc"]) == pytest.approx(0.5)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    f_s, f_t = _features(), _features(seed=1, shift=1.5)
    for _ in range(30):
        loss, logs = m.transfer_loss(f_s, f_t, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * math.log(2) and float(logs["domain_acc"]) > 0.9


# --------------------------------------------------------------------------- DAN's kernels


def test_dan_uniform_weights_equal_the_shared_multi_kernel_mmd() -> None:
    x, y = torch.randn(40, 8), torch.randn(40, 8) + 0.5
    mmd, beta = multi_kernel_mmd2(x, y, kernel_num=5, kernel_mul=2.0)
    torch.testing.assert_close(mmd, mmd2_torch(x, y, kernel_num=5, kernel_mul=2.0) / 5)
    torch.testing.assert_close(beta, torch.full((5,), 0.2))


def test_dan_linear_time_terms_average_to_the_linear_estimator() -> None:
    x, y = torch.randn(40, 8, dtype=torch.float64), torch.randn(40, 8, dtype=torch.float64) + 0.5
    base = 3.0
    h = linear_time_terms(x, y, [base * s for s in kernel_scales(3, 2.0)])
    assert h.shape == (3, 20)
    for u, s in enumerate(kernel_scales(3, 2.0)):
        ref = mmd2_torch(x, y, bandwidth=base * s, kernel_num=1, estimator="linear")
        torch.testing.assert_close(h[u].mean(), ref)


def test_optimal_kernel_weights_solve_the_qp() -> None:
    """Against a brute-force search over the simplex: same objective, feasible, normalised."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 50)) + np.array([[0.5], [0.2], [-0.1]])
    d, q = h.mean(1), np.cov(h)
    beta = optimal_kernel_weights(d, q, eps=1e-3)
    assert beta.min() >= 0 and beta.sum() == pytest.approx(1.0)
    a = q + 1e-3 * np.eye(3)
    # the QP's objective, scale-free: b^T A b / (d^T b)^2 over b >= 0 with d^T b > 0
    grid = [np.array([i, j, 40 - i - j]) / 40 for i in range(41) for j in range(41 - i)]
    feasible = [b for b in grid if d @ b > 0]
    best = min(b @ a @ b / (d @ b) ** 2 for b in feasible)
    assert beta @ a @ beta / (d @ beta) ** 2 <= best + 1e-9
    assert np.allclose(optimal_kernel_weights(-np.abs(d), q), 1 / 3)  # no discrepancy: uniform


# --------------------------------------------------------------------------- short training


@pytest.mark.parametrize("name", SUPERVISED)
def test_a_few_steps_reduce_the_total_loss(name: str) -> None:
    torch.manual_seed(0)
    model = create_model("lenet_gap", in_channels=3, bottleneck_dim=16, standardize=True)
    method = create_method(name, trade_off=1.0, feature_dim=model.feature_dim, num_classes=10)
    g = torch.Generator().manual_seed(0)
    # small random images: learning to label 16 of them takes a few steps, and the target is shifted
    xs, ys = torch.rand(16, 3, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g)
    xt = torch.rand(16, 3, 16, 16, generator=g) * 0.5 + 0.5
    opt = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=1e-2)
    losses = []
    for step in range(12):
        loss, logs = method.loss(model, xs, ys, xt, step / 12)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert set(logs) >= {"loss", "cls_loss"}
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_dan_with_test_power_kernel_weights_trains() -> None:
    """The per-batch optimal kernel weights keep the loss differentiable and finite."""
    torch.manual_seed(0)
    model = create_model("lenet_gap", in_channels=3, bottleneck_dim=16)
    method = create_method("dan", feature_dim=16, kernel_weights="optimal", estimator="linear")
    xs, xt = torch.rand(16, 3, 16, 16), torch.rand(16, 3, 16, 16) * 0.5 + 0.5
    loss, logs = method.loss(model, xs, torch.randint(0, 10, (16,)), xt, 0.5)
    loss.backward()
    assert math.isfinite(loss.item()) and {"mmd_gap", "mmd_bottleneck"} <= set(logs)
    assert model.features[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", DA_METHODS)
def test_train_runs_each_method_and_logs_its_curves(name: str) -> None:
    cfg = recommended_config(name, "mnist", "mnist-m").replace(
        epochs=1, batch_size=32, train_limit=128, test_limit=64, log_every=1, bottleneck_dim=16
    )
    events = list(train(cfg))
    assert events[-1].status == "complete", events[-1].message
    steps = [e for e in events if e.kind == "step"]
    keys = set(steps[-1].values)
    assert {"loss", "cls_loss", "transfer_loss", "lambda", "lr"} <= keys
    assert set(METHODS.get(name).extra_metrics) <= keys | {"source_acc", "target_acc"}
    epoch = next(e for e in events if e.kind == "epoch")
    assert {"source_acc", "target_acc"} <= set(epoch.values)
    if name == "dann":
        assert all(0.0 <= s.values["domain_acc"] <= 1.0 for s in steps)


def test_mnist_to_mnist_m_is_trained_in_colour_at_28px() -> None:
    from vizcore.models.architecture import build_model, resolve_input_shape

    cfg = recommended_config("dann", "mnist", "mnist-m")
    assert resolve_input_shape(cfg) == (3, 28, 28)
    assert build_model(cfg).in_channels == 3


# --------------------------------------------------------------------------- divergence guard


def test_a_diverging_da_run_fails_and_keeps_the_last_good_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transfer-loss weight jumps to Inf half-way through: epoch 1 is fine, epoch 2 blows up."""
    cls = METHODS.get("ddc")
    monkeypatch.setattr(cls, "lambda_at", lambda self, p: 1.0 if p < 0.5 else math.inf)
    store = RunStore(tmp_path / "runs", demo_root=None)
    good: dict[str, torch.Tensor] = {}
    events = []
    for ev in train(TINY_DA.replace(method="ddc", epochs=2), store):
        events.append(ev)
        if ev.kind == "epoch" and ev.epoch == 1:
            run = store.get(ev.run_id)
            good = load_file(run.path / "model.safetensors")
    end = events[-1]
    assert end.status == "failed" and "diverged" in end.message
    assert [e.epoch for e in events if e.kind == "epoch"] == [1]
    run = store.get(end.run_id)
    assert run.status()["status"] == "failed"
    kept = load_file(run.path / "model.safetensors")
    assert good and kept.keys() == good.keys()
    for k in good:
        assert torch.equal(kept[k], good[k]) and torch.isfinite(kept[k].float()).all()


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", list_methods())
@pytest.mark.parametrize("shift", [("mnist", "mnist-m"), ("mnist", "uci-digits"), ("mnist", None)])
def test_every_recipe_builds_a_valid_config_and_method(name: str, shift: tuple) -> None:
    cfg = recommended_config(name, *shift)
    assert (cfg.method, cfg.source, cfg.target) == (name, *shift)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # survives the run folder's config.json
    create_method(name, trade_off=cfg.trade_off, feature_dim=16, **cfg.method_params)


def test_recipe_overrides_win_and_method_params_merge() -> None:
    base = recommended_config("dann", "mnist", "mnist-m")
    cfg = recommended_config("dann", "mnist", "mnist-m", lr=0.5, method_params={"hidden": 7})
    assert cfg.lr == 0.5 and cfg.method_params["hidden"] == 7
    assert {k: v for k, v in cfg.method_params.items() if k != "hidden"} == {
        k: v for k, v in base.method_params.items() if k != "hidden"
    }
    with pytest.raises(ValueError, match="lrr"):
        recommended_config("dann", "mnist", "mnist-m", lrr=0.1)
    with pytest.raises(KeyError, match="valid names"):
        recommended_config("nope", "mnist", "mnist-m")


def test_cli_recipe_flag_starts_from_the_recipe_and_explicit_flags_win(tmp_path: Path) -> None:
    from vizcore.app.cli import main

    runs = tmp_path / "runs"
    # --lr 0.1 equals the plain TrainConfig default: it must still beat the recipe's value
    argv = ["--runs", str(runs), "train", "--recipe", "--method", "dann", "--target", "uci-digits",
            "--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--lr", "0.1",
            "--param", "hidden=8"]  # fmt: skip
    assert main(argv) == 0
    (rid,) = RunStore(runs, demo_root=None).run_ids()
    cfg = RunStore(runs, demo_root=None).get(rid).config()
    rec = recommended_config("dann", "mnist", "uci-digits")
    assert cfg.lr == 0.1 and cfg.epochs == 1 and cfg.train_limit == 64
    assert cfg.schedule == rec.schedule and cfg.bottleneck_dim == rec.bottleneck_dim
    assert cfg.standardize == rec.standardize and cfg.trade_off == rec.trade_off
    assert cfg.method_params == {**rec.method_params, "hidden": 8}


# --------------------------------------------------------------------------- target terms


def test_information_loss_is_the_negative_mutual_information_of_images_and_classes() -> None:
    from vizcore.methods.base import information_loss

    k = 10
    assert float(information_loss(torch.zeros(4, k))) == pytest.approx(0.0, abs=1e-6)  # uniform
    certain = torch.eye(k) * 50.0  # every class once, each image certain
    assert float(information_loss(certain)) == pytest.approx(-math.log(k), abs=1e-4)
    collapsed = torch.zeros(k, k)
    collapsed[:, 3] = 50.0  # every image certain of one class: no information
    assert float(information_loss(collapsed)) == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    p = logits.softmax(1)
    m = p.mean(0)
    direct = float(-(p * p.log()).sum(1).mean() + (m * m.log()).sum())
    assert float(information_loss(logits)) == pytest.approx(direct, rel=1e-5)


@pytest.mark.parametrize("domain_bn", [False, True])
def test_the_shared_loss_adds_the_target_im_and_forwards_each_domain_alone(domain_bn: bool) -> None:
    """The total is cls + lambda * transfer + w * IM(target predictions); under domain_bn every
    term is computed on each domain's batch forwarded alone (its own BatchNorm statistics), which
    differs from one joint forward pass."""
    from vizcore.methods.base import information_loss, split_features

    torch.manual_seed(0)
    model = create_model("lenet_gap", num_classes=10, in_channels=1, bottleneck_dim=16).train()
    xs, xt = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28) * 0.5 + 0.5  # the target brighter
    ys = torch.arange(8) % 10
    method = _method("coral", domain_bn=domain_bn, target_im=0.7)
    total, logs = method.loss(model, xs, ys, xt, 0.5)
    with torch.no_grad():
        if domain_bn:
            f_s, f_t = model.forward_features(xs), model.forward_features(xt)
        else:
            f_s, f_t = split_features(model.forward_features(torch.cat([xs, xt])), len(xs))
        transfer, _ = method.transfer_loss(f_s, f_t, 0.5)
        want = F.cross_entropy(f_s.logits, ys) + transfer + 0.7 * information_loss(f_t.logits)
        joint_s, joint_t = split_features(model.forward_features(torch.cat([xs, xt])), len(xs))
    assert float(total) == pytest.approx(float(want), rel=1e-5)
    assert float(logs["target_im"]) == pytest.approx(float(information_loss(f_t.logits)), rel=1e-5)
    if domain_bn:  # the two ways of forwarding give different target predictions: the choice is real
        assert not torch.allclose(f_t.logits, joint_t.logits, atol=1e-3)
    _, plain_logs = _method("coral").loss(model, xs, ys, xt, 0.5)
    assert "target_im" not in plain_logs


def test_target_terms_need_a_target_and_a_method_of_the_shared_loss() -> None:
    from vizcore.core.rules import ConfigError
    from vizcore.train.checks import check_config

    base = TINY_DA.replace(method="dann", domain_bn=True, target_im=0.3)
    check_config(base)  # accepted
    with pytest.raises(ConfigError, match="need a target"):
        check_config(base.replace(target=None, method="source_only"))
    with pytest.raises(ConfigError, match="shared loss .*not adda"):
        check_config(base.replace(method="adda", init_from="some-run"))
    with pytest.raises(ConfigError, match=r"^domain_bn = True \(--domain-bn\) acts on the target batches and needs a target"):
        check_config(base.replace(target=None, method="source_only", target_im=0.0))
    assert METHODS.get("dann").uses_shared_loss() and not METHODS.get("adda").uses_shared_loss()
    assert not METHODS.get("source_only").uses_shared_loss()


def test_information_loss_is_the_im_validator_negated() -> None:
    """The training loss and the validator that scores runs measure one quantity."""
    from vizcore.methods.base import information_loss
    from vizcore.metrics.validators import ValidationData, information_maximisation

    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(1)) * 3
    probs = logits.softmax(1).double().numpy()
    unused = np.empty(0)  # the validator reads the target predictions alone
    score = information_maximisation(ValidationData(probs, unused, unused, unused, unused, unused))
    assert float(information_loss(logits)) == pytest.approx(-score, rel=1e-5)
