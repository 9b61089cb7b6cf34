"""The two data paths (vizcore.data.feeds): tensors in memory and image files streamed by DataLoader
workers train the same weights from the same folder, the choice follows the size, and a bad
choice or a broken file is a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY
from vizcore.data import domains as D
from vizcore.data import feeds as F
from vizcore.data.sources.folders import FOLDER_PREFIX, folder_files, folder_size
from vizcore.store.runs import RunStore
from vizcore.train.loop import train

SHAPE = (1, 28, 28)  # the digits' own size: decoding needs no resize


def _digit_folder(root: Path, per_class: int, *, offset: int = 0, invert: bool = False) -> str:
    """``root/<digit>/<i>.png`` from the bundled MNIST test digits; returns the domain name."""
    d = D.load_domain("mnist", "test")
    for c in range(10):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for k in torch.nonzero(d.labels == c).flatten()[offset : offset + per_class].tolist():
            arr = (d.images[k, 0].numpy() * 255).round().astype(np.uint8)
            Image.fromarray(255 - arr if invert else arr).save(root / str(c) / f"{k}.png")
    return f"{FOLDER_PREFIX}{root}"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A source folder (8 + 2 digits a class, the 80/20 split) and a smaller inverted target folder
    (5 + 1 a class: its passes run out within one source epoch, so the target stream refills)."""
    root = tmp_path_factory.mktemp("feeds")
    return _digit_folder(root / "src", 10), _digit_folder(root / "tgt", 6, offset=10, invert=True)


def _config(source: str, target: str, **changes: object):  # type: ignore[no-untyped-def]
    return TINY.replace(source=source, target=target, method="dann", input_shape=SHAPE, batch_size=16, epochs=1,
                        train_limit=None, test_limit=None, precise_bn=True, augment_shift=2, **changes)  # fmt: skip


def _trained(config, store: RunStore) -> tuple[dict[str, torch.Tensor], list]:  # type: ignore[no-untyped-def]
    events = list(train(config, store))
    assert events[-1].status == "complete", events[-1].message
    return store.get(events[-1].run_id).load_model().state_dict(), events


def test_both_paths_train_the_same_weights(folders: tuple[str, str], tmp_path: Path) -> None:
    """DANN (target passes refilled, BatchNorm recomputed, shifted batches): the streamed run, in
    the training process and with a worker, equals the in-memory run."""
    store = RunStore(tmp_path / "runs", demo_root=None)
    memory, ev_m = _trained(_config(*folders, data_path="memory"), store)
    for workers in (0, 1):
        streamed, ev_s = _trained(_config(*folders, data_path="stream", workers=workers), store)
        assert streamed.keys() == memory.keys()
        for k, v in memory.items():
            torch.testing.assert_close(streamed[k], v, rtol=0, atol=1e-6, msg=k)
        acc = [e.values["target_acc"] for e in ev_s if e.kind == "epoch"]
        assert acc == [e.values["target_acc"] for e in ev_m if e.kind == "epoch"]
    ready = [e.message for e in ev_s if e.kind == "ready"][0]
    n = sum(folder_size(f, "train") for f in folders)  # source and target
    assert f"streaming {n} training images from disk (1 loader worker)" in ready
    assert "images in memory" in [e.message for e in ev_m if e.kind == "ready"][0]


def test_auto_streams_a_folder_above_the_memory_budget(folders: tuple[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    src = folders[0]
    assert not F.choose_streaming("auto", src, "train", SHAPE, None)  # 80 x 3 KB: far below 1 GB
    monkeypatch.setenv(F.STREAM_ABOVE_ENV, str(80 * 28 * 28 * 4 / 2**20 * 0.99))  # just under its size
    assert F.choose_streaming("auto", src, "train", SHAPE, None)
    assert not F.choose_streaming("auto", src, "train", SHAPE, 40)  # the limit halves it
    assert not F.choose_streaming("auto", "mnist", "train", SHAPE, None)  # generated in memory
    assert F.choose_streaming("stream", src, "train", SHAPE, 1) and not F.choose_streaming("memory", src, "train",
                                                                                            SHAPE, None)  # fmt: skip
    monkeypatch.setenv(F.STREAM_ABOVE_ENV, "lots")
    with pytest.raises(ValueError, match="megabytes"):
        F.choose_streaming("auto", src, "train", SHAPE, None)


@pytest.mark.parametrize(("changes", "message"), [
    ({"data_path": "stream"}, "reads image folders"),
    ({"data_path": "disk"}, "choose one of auto, memory, stream"),
    ({"workers": -1}, "workers must be"),
])  # fmt: skip
def test_a_bad_data_path_is_refused_before_a_run_exists(changes: dict, message: str, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    with pytest.raises(ValueError, match=message):
        list(train(TINY.replace(**changes), store))
    assert store.run_ids() == []


def test_folder_files_lists_what_load_domain_decodes(tmp_path: Path) -> None:
    """Same items in the same order (80/20 split, a limit), the same unreadable file skipped,
    and each file decodes to the in-memory image."""
    name = _digit_folder(tmp_path / "f", 6)
    (tmp_path / "f" / "3" / "junk.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="junk.png"):
        mem = D.load_domain(name, "train", shape=(3, 20, 20), limit=30, seed=2)
    files = folder_files(name, "train", shape=(3, 20, 20), limit=30, seed=2)
    assert torch.equal(files.labels, mem.labels) and files.provenance == mem.provenance
    assert "1 unreadable files skipped" in files.provenance
    feed = F.make_feed(files, F.FeedOptions(torch.device("cpu"), workers=0), train=False)
    streamed = torch.cat([x for x, _ in feed.in_order(batch_size=7)])
    torch.testing.assert_close(streamed, mem.images, rtol=0, atol=0)
    assert folder_size(name, "train") == 49 and folder_size(name, "test") == 12  # 61 files, junk counted


def test_photo_augmentation_is_per_image_and_training_only(folders: tuple[str, str]) -> None:
    files = folder_files(folders[0], "train", shape=(3, 32, 32))
    torch.manual_seed(0)
    opts = F.FeedOptions(torch.device("cpu"), workers=0, transform=F.photo_augment((3, 32, 32)))
    plain = torch.cat([x for x, _ in F.make_feed(files, opts, train=False).in_order()])
    same = torch.zeros(8, dtype=torch.int64)  # one image eight times in a batch
    for feed in (F.make_feed(files, opts, train=True),
                 F.MemoryFeed(plain, files.labels, torch.device("cpu"), transform=opts.transform)):  # fmt: skip
        (x, y), = feed.load([same])
        assert x.shape == (8, 3, 32, 32) and bool((y == files.labels[0]).all())
        assert 0 <= float(x.min()) and float(x.max()) <= 1
        assert len({tuple(v.flatten().tolist()) for v in x}) == 8  # each copy cropped its own way
        assert not torch.equal(x[0], plain[0])


def test_a_file_broken_past_its_header_fails_the_run_by_name(folders: tuple[str, str], tmp_path: Path) -> None:
    """Its header reads, so the listing keeps it; its pixels do not, so the streamed run fails
    with the file's name (not a worker's traceback) and claims no weights it does not have."""
    root = tmp_path / "broken"
    name = _digit_folder(root, 4)
    # a cut-off JPEG: PIL reads its header and JPEG has no structure to walk, so the listing
    # keeps it (a cut-off PNG is left out when listed: tests/data/test_folders.py)
    broken = root / "5" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(broken, quality=95)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size * 2 // 3])
    store = RunStore(tmp_path / "runs", demo_root=None)
    cfg = TINY.replace(source=name, input_shape=SHAPE, batch_size=8, epochs=1, train_limit=None, test_limit=None,
                       data_path="stream", workers=1)  # fmt: skip
    end = list(train(cfg, store))[-1]
    assert end.status == "failed"
    assert f"image {broken} could not be read" in end.message and "Traceback" not in end.message
    assert not store.get(end.run_id).has_weights()


@pytest.mark.slow  # a command-line training in a subprocess
def test_the_cli_streams_a_folder_at_the_size_asked(folders: tuple[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from vizcore.app import cli

    runs = tmp_path / "runs"
    code = cli.main(["--runs", str(runs), "train", "--data", folders[0], "--input-shape", "3,40,40", "--epochs", "1",
                     "--batch-size", "16", "--data-path", "stream", "--workers", "0", "--augment-crop", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "streaming 80 training images from disk (0 loader workers)" in out
    (rid,) = RunStore(runs, demo_root=None).run_ids()
    cfg = RunStore(runs, demo_root=None).get(rid).config()
    assert cfg.input_shape == (3, 40, 40) and cfg.data_path == "stream" and cfg.augment_crop
    with pytest.raises(SystemExit):
        cli.main(["--runs", str(runs), "train", "--input-shape", "224,224"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_cuda_asked_where_there_is_none_is_refused_before_a_run_exists(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        list(train(TINY.replace(device="cuda"), store))
    assert store.run_ids() == []


def test_streamed_passes_keep_their_workers(folders: tuple[str, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Two epochs of DANN with a worker start worker processes six times: once for the source's
    epochs, once for the target's passes (four of them), and once per test split and evaluation."""
    from torch.utils.data import dataloader

    started = []
    original = dataloader._MultiProcessingDataLoaderIter.__init__

    def counting(self, loader):  # type: ignore[no-untyped-def]
        started.append(loader.persistent_workers)
        original(self, loader)

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", counting)
    cfg = _config(*folders, data_path="stream", workers=1).replace(epochs=2, precise_bn=False)
    assert list(train(cfg, RunStore(tmp_path / "runs", demo_root=None)))[-1].status == "complete"
    assert sorted(started) == [False] * 4 + [True] * 2
