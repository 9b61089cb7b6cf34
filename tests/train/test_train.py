import math
import threading

import pytest
import torch

from tests.conftest import TINY
from vizcore.core.errors import DataUnavailable
from vizcore.core.registry import UnknownNameError
from vizcore.models.architecture import common_shape
from vizcore.store.runs import RunStore
from vizcore.train.augment import random_shift
from vizcore.train.loop import train
from vizcore.train.optim import SCHEDULES


def test_training_reduces_loss_and_beats_chance(store: RunStore) -> None:
    events = list(train(TINY.replace(epochs=2), store))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[1] == "ready" and kinds[-1] == "end"
    assert kinds.count("epoch") == 2
    steps = [e for e in events if e.kind == "step"]
    first = sum(e.values["loss"] for e in steps[:2]) / 2
    last = sum(e.values["loss"] for e in steps[-2:]) / 2
    assert last < 0.6 * first
    end = events[-1]
    assert end.status == "complete"
    assert end.values["source_acc"] > 0.25  # chance is 0.1; 2 short epochs, BN running stats still settling
    run = store.get(end.run_id)
    assert run.status()["status"] == "complete"
    assert run.summary()["source_acc"] == end.values["source_acc"]
    assert run.config().input_shape == (1, 28, 28)  # resolved shape is saved for reloading
    # the saved weights reproduce the reported accuracy
    from vizcore.data.feeds import FeedOptions, make_feed
    from vizcore.train.data import load_data
    from vizcore.train.trainer import evaluate

    test = make_feed(load_data(run.config()).source_test, FeedOptions(torch.device("cpu")), train=False)
    assert evaluate(run.load_model(), test) == end.values["source_acc"]


def test_deterministic_on_cpu() -> None:
    cfg = TINY.replace(train_limit=256, test_limit=64, device="cpu", augment_shift=2)
    a = [e.values for e in train(cfg) if e.kind == "step"]
    b = [e.values for e in train(cfg) if e.kind == "step"]
    strip = [{k: v for k, v in d.items() if k != "images_per_s"} for d in a]
    assert strip == [{k: v for k, v in d.items() if k != "images_per_s"} for d in b]


def test_break_keeps_a_stopped_run(store: RunStore) -> None:
    gen = train(TINY.replace(epochs=3), store)
    for ev in gen:
        if ev.kind == "step" and ev.step >= 4:
            break
    gen.close()
    run = store.get(ev.run_id)
    st = run.status()
    assert st["status"] == "stopped"
    assert run.has_weights() and "source_acc" in run.summary()
    run.load_model()


def test_stop_event_ends_cleanly(store: RunStore) -> None:
    stop = threading.Event()
    events = []
    for ev in train(TINY.replace(epochs=5), store, stop):
        events.append(ev)
        if ev.kind == "step":
            stop.set()
    assert events[-1].status == "stopped"
    assert events[-1].epoch == 1  # it did not run the remaining epochs
    assert store.get(events[-1].run_id).status()["status"] == "stopped"


def test_divergence_fails_and_keeps_last_good_weights(store: RunStore) -> None:
    # one good epoch at a sane lr, then a huge lr from epoch 2 on, through a custom schedule
    name = "_test_explode"
    if name not in SCHEDULES:
        SCHEDULES.add(name, lambda p: 1.0 if p < 0.5 else 1e12)
    events = list(train(TINY.replace(epochs=2, schedule=name, lr=0.05, optimizer="sgd"), store))
    end = events[-1]
    assert end.status == "failed" and "NaN" in end.message
    run = store.get(end.run_id)
    assert run.status()["status"] == "failed"
    model = run.load_model()  # epoch 1's weights are still there and finite
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_missing_data_is_refused_before_a_run_exists(store: RunStore, tmp_path) -> None:
    with pytest.raises(DataUnavailable, match="usps"):
        list(train(TINY.replace(source="usps", data_root=str(tmp_path)), store))
    assert store.run_ids() == []


def test_unknown_data_set_is_refused_before_a_run_exists(store: RunStore) -> None:
    with pytest.raises(UnknownNameError, match="valid names"):
        list(train(TINY.replace(source="no-such-set"), store))
    assert store.list() == []


def test_failed_run_never_touches_another(store: RunStore, trained_run) -> None:
    before = (trained_run.path / "model.safetensors").read_bytes()
    events = list(train(TINY.replace(epochs=1, lr=1e30), store))  # diverges at once
    assert events[-1].status == "failed"
    assert (trained_run.path / "model.safetensors").read_bytes() == before
    assert trained_run.status()["status"] == "complete"


def test_random_shift_moves_pixels_with_zero_fill() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(y.sum(dim=(1, 2, 3)), torch.ones(64))  # nothing wraps around
    pos = y[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 9, pos % 9
    assert rows.min() == 2 and rows.max() == 6 and cols.min() == 2 and cols.max() == 6


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedules_are_bounded(name: str) -> None:
    if name.startswith("_test"):
        return
    vals = [SCHEDULES.get(name)(p / 100) for p in range(100)]
    assert all(0 <= v <= 1.0 + 1e-9 and math.isfinite(v) for v in vals)


def test_dann_schedule_formula() -> None:
    assert SCHEDULES.get("dann")(0.5) == pytest.approx((1 + 5) ** -0.75)


def test_common_shape() -> None:
    assert common_shape((1, 28, 28), (3, 28, 28)) == (3, 28, 28)
    assert common_shape((1, 16, 16), (1, 28, 28)) == (1, 28, 28)


def test_supervised_recipe_is_the_measured_one() -> None:
    from vizcore.methods.recipes import recommended_config

    mnist = recommended_config("source_only", "mnist")
    assert (mnist.epochs, mnist.augment_shift, mnist.schedule, mnist.bottleneck_dim) == (15, 2, "onecycle", 0)
    assert recommended_config("source_only", "cluttered-mnist").model == "lenet_gap_plus"
    assert recommended_config("source_only", "mnist", "mnist-m").bottleneck_dim == 256  # adaptation recipe
    # precise BatchNorm belongs to the adaptation recipe; the supervised numbers were measured without it
    assert recommended_config("source_only", "mnist", "mnist-m").precise_bn and not mnist.precise_bn


def _step_losses(cfg) -> list[tuple[int, float]]:
    return [(e.epoch, e.values["loss"]) for e in train(cfg) if e.kind == "step"]


def test_fresh_layouts_redraw_a_generated_source_from_epoch_two() -> None:
    cfg = TINY.replace(
        source="cluttered-mnist", epochs=2, train_limit=128, test_limit=32, batch_size=32, log_every=1, device="cpu"
    )
    plain, fresh = _step_losses(cfg), _step_losses(cfg.replace(fresh_layouts=True))
    assert [e for e, _ in plain] == [e for e, _ in fresh] == [1] * 4 + [2] * 4
    assert plain[:4] == fresh[:4]  # epoch 1 keeps the run's own layout
    assert plain[4:] != fresh[4:]  # epoch 2 trains on new canvases
    # a fixed data set has no layout to redraw: the flag changes nothing
    mnist = cfg.replace(source="mnist")
    assert _step_losses(mnist) == _step_losses(mnist.replace(fresh_layouts=True))


def test_epoch_layout_seeds_are_distinct_and_keep_epoch_one() -> None:
    from vizcore.train.data import epoch_layout_seed

    assert epoch_layout_seed(5, 1) is None
    seeds = {epoch_layout_seed(s, e) for s in range(4) for e in range(2, 30)}
    assert len(seeds) == 4 * 28 and min(seeds) >= 0


@pytest.mark.parametrize(("flag", "fresh"), [([], True), (["--no-fresh-layouts"], False)])
def test_cli_cluttered_recipe_and_fresh_layouts_flag(tmp_path, flag: list[str], fresh: bool) -> None:
    from vizcore.app.cli import main

    runs = tmp_path / "runs"
    argv = ["--runs", str(runs), "train", "--recipe", "--data", "cluttered-mnist", "--epochs", "1",
            "--train-limit", "64", "--test-limit", "32", "--batch-size", "32", *flag]  # fmt: skip
    assert main(argv) == 0
    store = RunStore(runs, demo_root=None)
    (rid,) = store.run_ids()
    cfg = store.get(rid).config()
    assert (cfg.model, cfg.fresh_layouts, cfg.epochs) == ("lenet_gap_plus", fresh, 1)


def test_random_invert_flips_whole_images_at_the_given_rate() -> None:
    from vizcore.train.augment import random_invert

    x = torch.rand(4000, 3, 4, 4)
    out = random_invert(x, 0.3, torch.Generator().manual_seed(0))
    flipped = torch.isclose(out, 1 - x).flatten(1).all(1)
    kept = torch.equal(out[~flipped], x[~flipped])
    assert kept and abs(flipped.float().mean().item() - 0.3) < 0.03  # 4000 draws: 3 sigma is 0.022
    assert torch.equal(random_invert(x, 0.0, torch.Generator()), x)
    torch.testing.assert_close(random_invert(x, 1.0, torch.Generator()), 1 - x)


def test_mnist_m_recipe_inverts_half_the_source_and_the_cli_can_turn_it_off(tmp_path) -> None:
    from vizcore.app.cli import main
    from vizcore.methods.recipes import recommended_config

    assert recommended_config("source_only", "mnist", "mnist-m").augment_invert == 0.5
    assert recommended_config("dann", "mnist", "mnist-m").augment_invert == 0.5
    assert recommended_config("dann", "mnist", "uci-digits").augment_invert == 0.0
    runs = tmp_path / "runs"
    argv = ["--runs", str(runs), "train", "--recipe", "--method", "source_only", "--target", "mnist-m",
            "--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--augment-invert", "0"]  # fmt: skip
    assert main(argv) == 0
    (rid,) = RunStore(runs, demo_root=None).run_ids()
    assert RunStore(runs, demo_root=None).get(rid).config().augment_invert == 0.0


def test_precise_bn_averages_the_training_batches_and_leaves_training_alone() -> None:
    """With equal batches covering the whole training set, the recomputed running mean of the first
    BatchNorm is the mean of its input over that set, exactly as a direct computation gives it."""
    from vizcore.train.data import load_data
    from vizcore.train.trainer import Trainer

    cfg = TINY.replace(train_limit=256, test_limit=64, batch_size=64, epochs=1, device="cpu", log_every=1)
    plain = [e.values["loss"] for e in train(cfg) if e.kind == "step"]
    precise = [e.values["loss"] for e in train(cfg.replace(precise_bn=True)) if e.kind == "step"]
    assert plain == precise  # its own random stream: the training batches are the same

    trainer = Trainer(cfg.replace(precise_bn=True), None, None)
    trainer.epoch = 1
    trainer.precise_bn()
    conv, bn = trainer.model.features[0][0], trainer.model.features[0][1]
    x = load_data(trainer.config).source_train.images  # all 256 images, in 4 batches of 64
    with torch.no_grad():
        direct = conv(trainer.model.prep(x)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, direct, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1  # restored for training


def test_events_name_every_end_of_epoch_stage_in_order() -> None:
    cfg = TINY.replace(source="mnist", target="uci-digits", method="dann", precise_bn=True, train_limit=256,
                       test_limit=64, epochs=2)  # fmt: skip
    events = list(train(cfg))
    kinds = [(e.kind, e.message) for e in events if e.kind in ("stage", "epoch")]
    one_epoch = [("stage", "recomputing BatchNorm statistics"), ("stage", "evaluating on the source test split"),
                 ("stage", "evaluating on the target test split"), ("epoch", "")]  # fmt: skip
    assert kinds == one_epoch * 2
    last_step = max(i for i, e in enumerate(events) if e.kind == "step" and e.epoch == 1)
    first_stage = next(i for i, e in enumerate(events) if e.kind == "stage")
    assert last_step < first_stage  # the stages come after the epoch's steps


def test_images_per_second_counts_training_time_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: each training step takes 1 s, each evaluation 1000 s."""
    import types

    import vizcore.train.loop as L
    import vizcore.train.trainer as T

    clock = [0.0]
    for module in (L, T):  # the loop times the steps; the trainer's events are stamped too
        monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0],
                            monotonic=lambda: clock[0], time=lambda: clock[0]))  # fmt: skip
    step, evaluate_ = T.Trainer.train_step, T.evaluate

    def timed_step(self, *batch):  # type: ignore[no-untyped-def]
        clock[0] += 1.0
        return step(self, *batch)

    def timed_eval(*args, **kwargs):  # type: ignore[no-untyped-def]
        clock[0] += 1000.0
        return evaluate_(*args, **kwargs)

    monkeypatch.setattr(T.Trainer, "train_step", timed_step)
    monkeypatch.setattr(T, "evaluate", timed_eval)
    cfg = TINY.replace(train_limit=256, test_limit=64, batch_size=64, epochs=2)
    epochs = [e for e in train(cfg) if e.kind == "epoch"]
    assert [e.values["images_per_s"] for e in epochs] == [64.0, 64.0]  # 64 images a (1 s) step


def test_eval_every_evaluates_and_keeps_only_every_nth_epoch_and_the_last(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path) -> None:  # fmt: skip
    import vizcore.train.trainer as T
    from vizcore.store.runs import RunStore

    calls = []
    evaluate_ = T.evaluate
    monkeypatch.setattr(T, "evaluate", lambda *a, **k: calls.append(1) or evaluate_(*a, **k))
    store = RunStore(tmp_path / "runs", demo_root=None)
    cfg = TINY.replace(train_limit=128, test_limit=32, batch_size=64, epochs=5, eval_every=2)
    events = list(train(cfg, store))
    assert [e.epoch for e in events if e.kind == "epoch"] == [2, 4, 5]
    assert len(calls) == 3  # one source test split, three times: epochs 2, 4 and 5
    assert store.get(events[-1].run_id).summary()["epochs_done"] == 5
    with pytest.raises(ValueError, match="eval_every"):
        list(train(cfg.replace(eval_every=0), store))


def test_adabn_takes_the_batchnorm_statistics_of_the_target_training_images() -> None:
    """Li et al. 2016: the recomputed running mean of the first BatchNorm is the mean of its input
    over the target training images, as a direct computation gives it, not over the source's."""
    from vizcore.train.data import load_data
    from vizcore.train.trainer import Trainer

    cfg = TINY.replace(target="uci-digits", train_limit=256, test_limit=64, batch_size=64, epochs=1, adabn=True)
    trainer = Trainer(cfg, None, None)
    trainer.epoch = 1
    trainer.precise_bn()
    conv, bn = trainer.model.features[0][0], trainer.model.features[0][1]
    data = load_data(trainer.config)
    with torch.no_grad():
        direct = conv(trainer.model.prep(data.target_train.images)).mean(dim=(0, 2, 3))
        source = conv(trainer.model.prep(data.source_train.images)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, direct, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(bn.running_mean, source, atol=1e-2)
    stages = [e.message for e in train(cfg) if e.kind == "stage"]
    assert stages[0] == "recomputing BatchNorm statistics on the target training images (AdaBN)"
    with pytest.raises(ValueError, match="needs a target"):
        list(train(cfg.replace(target=None)))


def test_domain_bn_reads_each_test_split_with_its_own_statistics_and_keeps_the_targets() -> None:
    """Under domain_bn the source test split is read with statistics of the source training batches,
    the target's with those of the target training images, and the model keeps the target's."""
    from vizcore.train.data import load_data
    from vizcore.train.trainer import Trainer, evaluate

    cfg = TINY.replace(target="uci-digits", method="dann", train_limit=256, test_limit=64, batch_size=64,
                       epochs=1, domain_bn=True)  # fmt: skip
    trainer = Trainer(cfg, None, None)
    trainer.epoch = 1
    run = trainer.evaluate_all()
    stages = []
    try:
        while True:
            stages.append(next(run).message)
    except StopIteration as done:
        accs = done.value
    assert stages == [
        "recomputing BatchNorm statistics on the source training images",
        "evaluating on the source test split",
        "recomputing BatchNorm statistics on the target training images",
        "evaluating on the target test split",
    ]
    conv, bn = trainer.model.features[0][0], trainer.model.features[0][1]
    with torch.no_grad():
        direct = conv(trainer.model.prep(load_data(trainer.config).target_train.images)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, direct, rtol=1e-4, atol=1e-5)  # the target's, kept
    trainer.precise_bn("source")
    assert evaluate(trainer.model, trainer.tests["source"]) == accs["source_acc"]
    assert not torch.allclose(bn.running_mean, direct, atol=1e-2)  # the source's differ


@pytest.mark.parametrize("field", ["adabn", "domain_bn"])
def test_a_target_pass_ending_on_one_image_still_recomputes_the_statistics(field: str) -> None:
    # 65 target images in batches of 64 leave one image last: BatchNorm refused it and the run failed
    cfg = TINY.replace(target="uci-digits", method="dann", train_limit=65, test_limit=64, batch_size=64, epochs=1,
                       bottleneck_dim=16, **{field: True})  # fmt: skip
    end = list(train(cfg))[-1]
    assert end.status == "complete", end.message


def test_each_epoch_reports_the_loss_of_its_own_last_step(store: RunStore) -> None:
    # one step an epoch, logged every 10 steps: the epoch line used to repeat a stale loss
    events = list(train(TINY.replace(epochs=3, train_limit=64, batch_size=64, log_every=10), store))
    assert events[-1].status == "complete", events[-1].message
    epochs = [e.values["loss"] for e in events if e.kind == "epoch"]
    steps = [e.values["loss"] for e in events if e.kind == "step"]
    assert len(epochs) == 3 and len(set(epochs)) == 3
    assert epochs[-1] == steps[-1]  # the last step is logged: the same number
