"""Runs from runs and the methods built on them: ADDA, fine-tuning, distillation, CDAN and
instance spreading. Losses are checked against hand computations; training on tiny data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vizcore.app import cli
from vizcore.core.config import TrainConfig
from vizcore.methods import create_method
from vizcore.methods.cdan import entropy_weights, multilinear_map, randomized_map
from vizcore.methods.distill import kd_loss
from vizcore.methods.freeze import apply_freeze
from vizcore.methods.instance_spread import instance_spread_loss, knn_accuracy
from vizcore.models import create_model
from vizcore.store.info import children, lineage
from vizcore.store.runs import RunStore
from vizcore.train.lineage import resolve_lineage
from vizcore.train.loop import train
from vizcore.train.trainer import Trainer

# a parent on MNIST -> MNIST-M-style: the DA recipe's network (adaptation layer, colour input)
PARENT = TrainConfig(source="mnist", target="mnist-m", epochs=1, batch_size=32, train_limit=256, test_limit=64,
                     bottleneck_dim=16, standardize=True, lr=0.01, schedule="constant", log_every=2)  # fmt: skip


@pytest.fixture(scope="module")
def parent_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunStore, str]:
    """A store holding one complete tiny source-only run (the parent and teacher of the tests)."""
    store = RunStore(tmp_path_factory.mktemp("lineage") / "runs", demo_root=None)
    events = list(train(PARENT, store))
    assert events[-1].status == "complete", events[-1].message
    return store, events[-1].run_id


def _trainer(config: TrainConfig, store: RunStore) -> Trainer:
    config, lin = resolve_lineage(config, store)
    return Trainer(config, None, None, lin)


def _steps(trainer: Trainer, n: int) -> list[dict]:
    trainer.start_epoch(1)
    gen = torch.Generator().manual_seed(0)
    src = trainer.source
    return [trainer.train_step(*next(src.load([torch.randperm(len(src), generator=gen)[:32]]))) for _ in range(n)]


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------------------- ADDA


def test_adda_leaves_the_source_encoder_and_classifier_bit_identical(parent_store) -> None:
    store, rid = parent_store
    parent = store.get(rid).load_model().state_dict()
    t = _trainer(PARENT.replace(method="adda", init_from=rid, optimizer="adam", lr=1e-3), store)
    logs = _steps(t, 4)
    assert {"disc_loss", "encoder_loss", "domain_acc"} <= set(logs[-1])
    source = t.method.source_encoder.state_dict()
    assert source.keys() == parent.keys()
    assert all(torch.equal(source[k], parent[k]) for k in parent)  # weights and BN buffers
    child = t.model.state_dict()
    for k in ("fc.weight", "fc.bias"):
        assert torch.equal(child[k], parent[k])  # the source classifier is shared, fixed
    # the target encoder was trained: initialised from the source encoder, now moved
    assert not torch.equal(child["features.0.0.weight"], parent["features.0.0.weight"])
    assert set(t.opts) == {"encoder", "discriminator"}
    assert not any(p is q for p in t.opts["encoder"].param_groups[0]["params"] for q in t.model.fc.parameters())


def test_adda_run_saves_a_normal_model_with_its_lineage(parent_store) -> None:
    store, rid = parent_store
    end = list(train(PARENT.replace(method="adda", init_from=rid, optimizer="adam", lr=1e-3), store))[-1]
    assert end.status == "complete", end.message
    run = store.get(end.run_id)
    model = run.load_model()  # target encoder + source classifier: loads like any run
    parent = store.get(rid).load_model()
    assert torch.equal(model.fc.weight, parent.fc.weight)
    assert lineage(run) == {"parent": rid}
    assert (end.run_id, "parent") in children(store.list(), rid)


def test_adda_discriminator_reads_its_input_and_keeps_source_statistics_when_asked(parent_store) -> None:
    store, rid = parent_store
    cfg = PARENT.replace(method="adda", init_from=rid, optimizer="adam", lr=1e-3,
                         method_params={"input": "probs", "target_bn": "source", "smoothing": 0.1})  # fmt: skip
    t = _trainer(cfg, store)
    assert t.method.discriminator[0].in_features == t.model.num_classes  # class probabilities
    before = _state(t.model)
    _steps(t, 3)
    after = t.model.state_dict()
    stats = [k for k in before if "running_" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)  # source statistics kept
    assert not torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])  # weights learn


def test_adda_label_smoothing_moves_both_labels_towards_one_half() -> None:
    from vizcore.methods.adda import discriminator_loss

    d_s, d_t = torch.tensor([2.0]), torch.tensor([-1.0])
    loss, acc = discriminator_loss(d_s, d_t, smoothing=0.1)
    want = (F.binary_cross_entropy_with_logits(d_s, torch.tensor([0.9]))
            + F.binary_cross_entropy_with_logits(d_t, torch.tensor([0.1]))) / 2  # fmt: skip
    assert torch.allclose(loss, want) and acc.item() == 1.0


# ------------------------------------------------------------------------------- freezing


def test_freezing_keeps_frozen_weights_and_statistics_bit_identical_and_trains_the_rest(parent_store) -> None:
    store, rid = parent_store
    cfg = PARENT.replace(method="finetune", init_from=rid, freeze=1, target_labels_per_class=3, precise_bn=True)
    t = _trainer(cfg, store)
    before = _state(t.model)
    _steps(t, 3)
    list(t.evaluate_all())  # the BatchNorm pass must not touch the frozen statistics either
    after = t.model.state_dict()
    frozen = [k for k in before if k.startswith("features.0.")]
    assert any("running_mean" in k for k in frozen) and any("num_batches_tracked" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["features.1.0.weight"], after["features.1.0.weight"])
    assert not torch.equal(before["features.1.1.running_mean"], after["features.1.1.running_mean"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    # the training set is 3 labelled target images per class, drawn from the target's training split
    assert len(t.source) == 30 and torch.bincount(t.source.labels, minlength=10).tolist() == [3] * 10


def test_freeze_by_name_and_a_bad_freeze_is_refused() -> None:
    model = create_model("lenet_gap", bottleneck_dim=8)
    assert apply_freeze(model, ["features", "bottleneck"]) == ["features", "bottleneck"]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="valid names: .*features.0"):
        apply_freeze(create_model("lenet_gap"), ["feature"])
    with pytest.raises(ValueError, match="0 to 2"):
        apply_freeze(create_model("lenet_gap"), 3)


# ------------------------------------------------------------------------------- distillation


def test_kd_loss_equals_a_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 3, 1, 1, 2])
    temp, alpha = 3.0, 0.7
    s_np, t_np = s.double().numpy(), t.double().numpy()

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(t_np / temp), softmax(s_np / temp)
    kl = np.mean([sum(p[i, k] * math.log(p[i, k] / q[i, k]) for k in range(4)) for i in range(5)])
    ce = np.mean([-math.log(softmax(s_np)[i, y[i]]) for i in range(5)])
    total, soft, hard = kd_loss(s.double(), t.double(), y, temp, alpha)
    assert float(soft) == pytest.approx(temp**2 * kl, rel=1e-10)
    assert float(hard) == pytest.approx(ce, rel=1e-10)
    assert float(total) == pytest.approx(alpha * temp**2 * kl + (1 - alpha) * ce, rel=1e-10)


def test_a_teacher_must_fit_and_its_student_is_the_configured_architecture(parent_store) -> None:
    store, rid = parent_store
    cfg = PARENT.replace(method="distill", teacher=rid, target=None, widths=(8, 16), bottleneck_dim=0)
    t = _trainer(cfg, store)
    assert t.config.input_shape == (3, 28, 28)  # the student sees what its teacher saw
    assert t.model.features[0][0].out_channels == 8 and t.model.features[1][0].out_channels == 16
    teacher = t.method.teacher
    before = _state(teacher)
    logs = _steps(t, 2)
    assert 0.0 <= float(logs[-1]["teacher_agreement"]) <= 1.0
    assert not teacher.training and all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="predicts 10 classes|sees"):
        resolve_lineage(TrainConfig(source="uci-digits", method="distill", teacher=rid, input_shape=(1, 8, 8)), store)


# ------------------------------------------------------------------------------- CDAN


def test_cdan_multilinear_map_is_the_outer_product_and_its_gradient_is_reversed() -> None:
    g = torch.Generator().manual_seed(0)
    f, p = torch.randn(3, 5, generator=g), F.softmax(torch.randn(3, 4, generator=g), 1)
    t = multilinear_map(f, p)
    assert t.shape == (3, 20)
    for b in range(3):
        for k in range(4):
            for d in range(5):
                assert t[b, k * 5 + d] == pytest.approx(float(p[b, k] * f[b, d]))
    rf, rg = torch.randn(5, 64, generator=g), torch.randn(4, 64, generator=g)
    r = randomized_map(f, p, rf, rg)
    assert r.shape == (3, 64)
    torch.testing.assert_close(r, (f @ rf) * (p @ rg) / 8.0)
    # the discriminator's gradient reaches the features reversed, scaled by lambda_p
    m = create_method("cdan", feature_dim=5, num_classes=4, dropout=0.0).eval()
    from vizcore.models.base import Features

    def feats(x: torch.Tensor, logits: torch.Tensor) -> Features:
        return Features(conv=x[:, :, None, None], gap=x, bottleneck=None, logits=logits)

    x = torch.randn(8, 5, generator=g, requires_grad=True)
    logits = torch.randn(8, 4, generator=g)
    loss, logs = m.transfer_loss(feats(x[:4], logits[:4]), feats(x[4:], logits[4:]), 0.3)
    (grad_x,) = torch.autograd.grad(loss, x)
    lam = 2 / (1 + math.exp(-10 * 0.3)) - 1
    assert logs["lambda"] == pytest.approx(lam)
    # the same loss without reversal, by hand
    h = multilinear_map(x, F.softmax(logits, 1))
    label = torch.cat([torch.ones(4), torch.zeros(4)])
    plain = F.binary_cross_entropy_with_logits(m.discriminator(h).squeeze(1), label)
    (grad_plain,) = torch.autograd.grad(plain, x)
    torch.testing.assert_close(loss, plain)
    torch.testing.assert_close(grad_x, -lam * grad_plain)


def test_cdan_entropy_weights_match_the_formula() -> None:
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    w = entropy_weights(p, 2)
    h = [-(a * math.log(a) + b * math.log(b)) for a, b in p.tolist()]
    raw = [1 + math.exp(-v) for v in h]
    expect = [raw[0] / (raw[0] + raw[1]), raw[1] / (raw[0] + raw[1]), 1.0]
    assert w.tolist() == pytest.approx(expect)


# ------------------------------------------------------------------------------- instance spreading


def test_instance_spreading_loss_equals_a_hand_computation_on_four_images() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    tau = 0.5
    rows = [v / np.linalg.norm(v) for v in np.vstack([z1.numpy(), z2.numpy()])]
    n, total = 8, 0.0
    for i in range(n):
        sims = {k: math.exp(float(rows[i] @ rows[k]) / tau) for k in range(n) if k != i}
        denom = sum(sims.values())
        twin = (i + 4) % n
        total += math.log(sims[twin] / denom)
        total += sum(math.log(1 - sims[k] / denom) for k in sims if k != twin)
    assert float(instance_spread_loss(z1, z2, tau)) == pytest.approx(-total / n, rel=1e-6)


def test_knn_accuracy_is_a_cosine_majority_vote() -> None:
    memory = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[5.0, 0.5], [0.1, 3.0], [1.0, 0.6]])  # scale does not matter: cosine
    # k = 3: query 2 (at 31°) is nearest to rows 1 (6°), 0 (0°) and 4 (79°): two votes for class 0
    assert knn_accuracy(memory, labels, query, torch.tensor([0, 1, 0]), k=3) == 1.0
    assert knn_accuracy(memory, labels, query, torch.tensor([1, 1, 1]), k=3) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------- refusals


def _no_runs_made(store: RunStore, before: set[str]) -> None:
    assert set(store.run_ids()) == before
    assert not any(p.name.endswith(".partial") for p in store.root.iterdir())


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 200, "no-such-run"])
@pytest.mark.parametrize("role", ["init_from", "teacher"])
def test_a_hostile_or_missing_parent_is_refused_before_a_run_folder_exists(parent_store, role, bad) -> None:
    store, _ = parent_store
    before = set(store.run_ids())
    method = "distill" if role == "teacher" else "finetune"
    cfg = PARENT.replace(method=method, target_labels_per_class=2 if method == "finetune" else None, **{role: bad})
    if method == "distill":
        cfg = cfg.replace(target=None)
    with pytest.raises(ValueError, match=f"{role}|needs"):
        list(train(cfg, store))
    _no_runs_made(store, before)


def test_an_incomplete_parent_is_refused(parent_store) -> None:
    store, rid = parent_store
    stub = store.create(PARENT)  # "running", no weights
    before = set(store.run_ids())
    with pytest.raises(ValueError, match="not complete"):
        list(train(PARENT.replace(method="adda", init_from=stub.run_id), store))
    _no_runs_made(store, before)
    store.delete(stub.run_id)


def test_a_parent_of_another_architecture_is_refused(parent_store) -> None:
    store, rid = parent_store
    before = set(store.run_ids())
    with pytest.raises(ValueError, match="another architecture"):
        list(train(PARENT.replace(method="adda", init_from=rid, bottleneck_dim=32), store))
    _no_runs_made(store, before)


def test_a_typo_in_a_choice_parameter_is_refused_with_the_valid_values(parent_store) -> None:
    store, _ = parent_store
    before = set(store.run_ids())
    with pytest.raises(ValueError, match="randomized='alwys' is not a valid choice; valid values: auto, never, always"):
        list(train(PARENT.replace(method="cdan", method_params={"randomized": "alwys"}), store))
    with pytest.raises(ValueError, match="needs init_from"):
        list(train(PARENT.replace(method="adda"), store))
    with pytest.raises(ValueError, match="adapts to an unlabelled target"):
        list(train(PARENT.replace(method="cdan", target_labels_per_class=2), store))
    _no_runs_made(store, before)


# ------------------------------------------------------------------------------- the command line


def _cli_cases(rid: str) -> dict[str, list[str]]:
    common = ["--epochs", "1", "--batch-size", "32", "--train-limit", "128", "--test-limit", "64", "--quiet"]
    da = ["--source", "mnist", "--target", "mnist-m", "--bottleneck-dim", "16", "--standardize", "--lr", "0.01"]
    return {
        "cdan": [*da, "--method", "cdan", *common],
        "cdan+e": [*da, "--method", "cdan", "--param", "entropy=true", *common],
        "adda": [*da, "--method", "adda", "--init-from", rid, "--optimizer", "adam", "--lr", "0.001", *common],
        "finetune": [*da, "--method", "finetune", "--init-from", rid, "--freeze", "2",
                     "--target-labels-per-class", "3", *common],  # fmt: skip
        "distill": ["--method", "distill", "--teacher", rid, "--model", "lenet_gap", "--widths", "8,16", *common],
        "instance_spread": ["--method", "instance_spread", "--data", "mnist", *common],
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(_cli_cases("x")))
def test_each_new_method_trains_a_tiny_epoch_from_the_command_line(parent_store, case, capsys) -> None:
    store, rid = parent_store
    assert cli.main(["--runs", str(store.root), "train", *_cli_cases(rid)[case]]) == 0
    out = capsys.readouterr().out
    assert "complete." in out
    newest = max(store.list(), key=lambda r: r.created)
    cfg = store.get(newest.run_id).config()
    assert cfg.method == case.split("+")[0]
    if case == "cdan+e":
        assert cfg.method_params == {"entropy": True}
    if case == "instance_spread":
        assert "knn acc" in out and "knn_acc" in newest.summary
    if case in ("adda", "finetune"):
        assert newest.init_from == rid
    if case == "distill":
        assert newest.teacher == rid and cfg.widths == (8, 16)


def test_cli_refuses_a_hostile_parent_id(parent_store, capsys) -> None:
    store, _ = parent_store
    before = set(store.run_ids())
    code = cli.main(["--runs", str(store.root), "train", "--method", "adda", "--target", "mnist-m",
                     "--init-from", "../../etc", "--quiet"])  # fmt: skip
    assert code == 2 and "is not a run id" in capsys.readouterr().err
    _no_runs_made(store, before)


def test_lineage_is_written_into_the_config(tmp_path: Path, parent_store) -> None:
    store, rid = parent_store
    cfg = PARENT.replace(method="finetune", init_from=rid, freeze=["features.0"], target_labels_per_class=1)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_a_bench_cell_is_the_mean_and_sample_std_over_seeds() -> None:
    from vizcore.core.numbers import MISSING, mean_std

    assert mean_std([0.5, 0.7]) == f"60.0 ± {100 * math.sqrt(0.02):.1f}"
    assert mean_std([0.42]) == "42.0 ± 0.0" and mean_std([]) == MISSING
    assert mean_std([0.1, 0.3], scale=1, decimals=2) == "0.20 ± 0.14"


def test_before_defaults_to_the_parent_of_the_after_run() -> None:
    from vizcore.store.info import RunInfo, lineage_text
    from vizcore.views.embeddings import default_pair

    def info(rid: str, method: str, parent: str | None = None) -> RunInfo:
        return RunInfo(rid, rid, "complete", method, "lenet_gap", "mnist", "mnist-m", 0, 0.0, False, {}, "",
                       init_from=parent)  # fmt: skip

    runs = [info("adda-run", "adda", "parent-run"), info("other-so", "source_only"), info("parent-run", "source_only")]
    assert default_pair(runs) == ("parent-run", "adda-run")
    assert lineage_text(runs[0], [r.run_id for r in runs]) == "parent parent-run"
    assert lineage_text(runs[0], ["adda-run"]) == "parent parent-run (gone)"
    assert default_pair(runs[:2]) == ("other-so", "adda-run")  # a parent no longer listed: the usual choice


def test_the_lineage_checks_build_this_runs_model_once_and_without_imagenet_weights(parent_store, monkeypatch) -> None:
    """A parent and a teacher are both checked against one build of this run's architecture."""
    import vizcore.train.lineage as lineage_module

    store, rid = parent_store
    builds: list[object] = []
    original = lineage_module.build_model

    def counted(config, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(kwargs.get("pretrained"))
        return original(config, **kwargs)

    monkeypatch.setattr(lineage_module, "build_model", counted)
    resolve_lineage(PARENT.replace(method="distill", init_from=rid, teacher=rid, target=None), store)
    assert builds == [False]
