"""The command line as a person reads it: a header, readable summaries, JSON for machines."""

from __future__ import annotations

import json

import pytest

from vizcore.app import cli
from vizcore.store.runs import RunStore


def test_list_has_a_header_and_percentages(trained_store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--runs", str(trained_store.root), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["RUN", "STATUS", "SOURCE", "TARGET"]
    run = trained_store.get(trained_store.run_ids()[0])
    acc = run.summary()["source_acc"]
    row = next(line for line in lines if line.startswith(run.run_id))
    assert f"{100 * acc:.1f}%" in row and "—" in row  # no target: the one mark for "missing"


def test_show_is_readable_and_json_is_exact(trained_store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    rid = trained_store.run_ids()[0]
    assert cli.main(["--runs", str(trained_store.root), "show", rid]) == 0
    text = capsys.readouterr().out
    assert "source test accuracy" in text and "{" not in text
    assert cli.main(["--runs", str(trained_store.root), "show", rid, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == trained_store.get(rid).summary()


def test_train_prints_epochs_with_percentages(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--runs", str(tmp_path), "train", "--epochs", "1", "--train-limit", "256", "--test-limit", "64",
            "--batch-size", "64", "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    epoch = next(line for line in out.splitlines() if line.startswith("epoch 1/1"))
    assert "source " in epoch and "%" in epoch and "img/s" in epoch
    assert "complete." in out
