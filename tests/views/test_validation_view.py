"""A run's validator scores: computed once per weights from the target training split, then read."""

from __future__ import annotations

import pytest

from tests.conftest import TINY
from vizcore.app.sweep import run_sweep
from vizcore.app.sweep_spec import parse_spec
from vizcore.metrics.validators import VALIDATORS
from vizcore.views import analysis
from vizcore.views.validation import has_scores, validation_data, validator_scores

SETS = ["source=mnist", "target=uci-digits", "method=ddc", "epochs=1", "batch_size=32", "train_limit=128",
        "test_limit=64", "schedule=constant"]  # fmt: skip


@pytest.mark.slow
def test_a_search_maximises_a_validator_and_its_scores_are_cached_with_the_run(store):
    spec = parse_spec("s", SETS, [], ["trade_off=0.1:1:log"], trials=2, objective="snd", validators=True)
    done = run_sweep(spec, store)
    assert [r.status for r in done] == ["complete", "complete"]
    assert run_sweep(spec, store) == []  # the budget is spent: a second worker starts nothing
    run = store.get(done[0].run_id)
    assert has_scores(run)
    passes = analysis.FORWARD_PASSES[0]
    scores = validator_scores(run)
    assert analysis.FORWARD_PASSES[0] == passes  # read from the run's cache
    assert set(scores) == {*VALIDATORS, "mmd"}
    assert scores["snd"] == pytest.approx(done[0].value)
    d = validation_data(run)
    assert d.target_probs.shape == (128, 10)  # the target training images the run adapted to
    assert not hasattr(d, "target_labels")


def test_a_run_without_a_target_has_no_validator_scores(store):
    with pytest.raises(ValueError, match="no target domain"):
        validator_scores(store.create(TINY))
