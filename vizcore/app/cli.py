"""Command line: ``python -m vizcore train|sweep|list|show|delete|restore|trash`` over the same functions
as the dashboard."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vizcore.core.atomic import StoreWriteError
from vizcore.core.config import TrainConfig
from vizcore.core.errors import DataUnavailable
from vizcore.core.numbers import MISSING, fmt, percent
from vizcore.core.rules import ConfigError
from vizcore.data.feeds import DATA_PATHS, STREAM_ABOVE_ENV, STREAM_ABOVE_MB
from vizcore.store.datasets import registered_domain, with_registered_names
from vizcore.store.info import RunInfo, lineage
from vizcore.store.runs import RunStore
from vizcore.train.distributed import WorldError


def _value(text: str) -> Any:
    """'0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# vizcore.data.sources.folders.FOLDER_HELP in other words; not imported, so `list` and `--help` stay free of torch
FOLDER_EPILOG = (
    "folder:PATH reads images from one sub-folder per class, PATH/<class>/<image>. If PATH has "
    "train/ and test/ (or val/) sub-folders, those are the splits (train/<class>/..., "
    "test/<class>/...); otherwise a fixed stratified 80/20 split (seed 0) of PATH is used. Class "
    "folders named 0..K-1 (also 00, 01, ...) are ordered by value and match the digit classes of "
    "mnist and the other digit sets. Source and target must have the same classes in the same "
    "order, or --class-map must map every target class onto a source class."
)


def _class_map(text: str) -> dict[str, str]:
    """``"cat=0,dog=1"`` -> ``{"cat": "0", "dog": "1"}`` (an argparse ``type``)."""
    mapping: dict[str, str] = {}
    for item in filter(str.strip, text.split(",")):
        t, sep, s = (part.strip() for part in item.partition("="))
        if not (sep and t and s):
            raise argparse.ArgumentTypeError(f"expected TARGET=SOURCE[,...], got {item!r}")
        if t in mapping:
            raise argparse.ArgumentTypeError(f"target class {t!r} is mapped twice")
        mapping[t] = s
    if not mapping:
        raise argparse.ArgumentTypeError("expected TARGET=SOURCE[,...], e.g. cat=0,dog=1")
    return mapping


def _ints(text: str, what: str) -> tuple[int, ...]:
    """``"3,224,224"`` -> ``(3, 224, 224)``; the ranges are TrainConfig's to check, in its words."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _shape(text: str) -> tuple[int, int, int]:
    """``"3,224,224"`` -> ``(3, 224, 224)`` (an argparse ``type``)."""
    shape = _ints(text, "C,H,W like 3,224,224")
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W with C 1 (grey) or 3 (RGB), like 3,224,224; got {text!r}")  # fmt: skip
    return shape  # type: ignore[return-value]


def _widths(text: str) -> tuple[int, ...]:
    """``"8,16"`` -> ``(8, 16)`` (an argparse ``type``)."""
    return _ints(text, "channel counts like 8,16")


def _freeze(text: str) -> int | list[str]:
    """``"2"`` -> 2 (the first two conv blocks); ``"features,bottleneck"`` -> layer names."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a number of conv blocks or layer names, e.g. 2 or features.0")
    return names


# How argparse reads each kind of TrainConfig field: (type, metavar). The flags themselves are
# generated from the config's fields (their Rule: flag, help), so a new field is one edit there.
_READERS: dict[str, tuple[Any, str | None]] = {
    "int": (int, None), "float": (float, None), "text": (str, None), "name": (str, None),
    "domain": (str, "DATA"), "run": (str, "RUN"), "shape": (_shape, "C,H,W"), "widths": (_widths, "C1,C2,..."),
    "freeze": (_freeze, "K|NAMES"), "class_map": (_class_map, "T=S,..."),
}  # fmt: skip
# What the command line says beyond a field's own help: folder:PATH for the domains, the budget of
# the streaming path (its environment variable is the CLI's business, not the config's)
_MORE_HELP = {
    "source": " (e.g. mnist, mnist-m, uci-digits; the folder layouts are below)",
    "target": "; a name or folder:PATH like --data, with the source's classes",
    "data_path": f" (budget: ${STREAM_ABOVE_ENV}, default {STREAM_ABOVE_MB} MB; "
    + "; ".join(f"{k}: {v}" for k, v in DATA_PATHS.items()) + ")",
}
_ALIASES = {"source": ("--source",)}  # older spellings still accepted


def _config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field that the command line sets (the method's own parameters
    come through ``--param KEY=VALUE``)."""
    defaults = TrainConfig()
    for name, rule in TrainConfig.rules().items():
        flag = TrainConfig.flag(name)
        if flag is None or rule.kind == "params":
            continue
        flags, text = (flag, *_ALIASES.get(name, ())), rule.help + _MORE_HELP.get(name, "")
        if rule.kind != "bool":
            kind, metavar = _READERS[rule.kind]
            p.add_argument(*flags, dest=name, type=kind, metavar=metavar, default=getattr(defaults, name), help=text)
        elif flag.startswith("--no-"):  # a field on by default, switched off by its flag
            p.add_argument(*flags, dest=name, action="store_false", help=f"no {text}")
        else:
            p.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                           default=getattr(defaults, name), help=text)  # fmt: skip


def _train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model and write a run", epilog=FOLDER_EPILOG)
    p.add_argument("--recipe", action="store_true",
                   help="start from the tuned recipe of the method and domains; other flags override it")  # fmt: skip
    _config_flags(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the method, as declared with it (e.g. --method cdan --param entropy=true for CDAN+E)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar (epoch lines only)")
    return p


def _config_from_args(a: argparse.Namespace) -> TrainConfig:
    params = {}
    for item in a.param:
        key, sep, val = item.partition("=")
        if not sep:
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        params[key] = _value(val)
    fields = {k: v for k, v in vars(a).items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**{**fields, "method_params": {**getattr(a, "recipe_params", {}), **params}})


# epoch values worth a column in the terminal, in this order; accuracies as percentages
# (then the curves the method declares, then the throughput)
EPOCH_COLUMNS = {"loss": "loss", "source_acc": "source", "target_acc": "target"}


def _epoch_line(values: dict[str, float], declared: tuple[str, ...] = ()) -> str:
    """One epoch's values: the common columns, the method's declared curves, img/s."""

    def one(key: str) -> str:
        v = values[key]
        return percent(v) if key.endswith("_acc") else f"{v:,.0f}" if key == "images_per_s" else fmt(v)

    columns = {**EPOCH_COLUMNS, **{k: k.replace("_", " ") for k in declared}, "images_per_s": "img/s"}
    return "  ".join(f"{label} {one(k)}" for k, label in columns.items() if k in values)


def cmd_train(a: argparse.Namespace, store: RunStore) -> int:
    from tqdm import tqdm

    from vizcore.methods import METHODS
    from vizcore.train.distributed import current_world
    from vizcore.train.distributed import finish as finish_world
    from vizcore.train.loop import completed, train

    # a folder registered on the Your data page is named like a data set, and its runs show that name
    a.source, a.target = (registered_domain(store.root, d) for d in (a.source, a.target))
    cfg = with_registered_names(_config_from_args(a), store.root)
    world = current_world()
    if world is not None and not world.is_main:  # under torchrun, rank 0 alone reports (and writes)
        end = completed(train(cfg, store))
        finish_world(world)
        return 0 if end.status == "complete" else 1
    status = "failed"
    declared: tuple[str, ...] = ()
    # a bar over all steps, with the loss and the stage of the end-of-epoch work as it happens
    bar = None
    for ev in train(cfg, store):
        if ev.kind == "start":  # the config has passed train's checks: the method is a known one
            method = METHODS.get(cfg.method)
            declared = (*method.eval_metrics, *method.extra_metrics)
            print(f"run {ev.run_id}: {ev.message}", flush=True)
        elif ev.kind == "ready":
            print(ev.message, flush=True)
            bar = tqdm(total=ev.total_steps, unit="step", dynamic_ncols=True, disable=a.quiet)
        elif bar is not None and ev.kind == "step":
            bar.update(ev.step - bar.n)
            bar.set_description(f"epoch {ev.epoch}/{cfg.epochs}")
            bar.set_postfix_str(f"loss {fmt(ev.values.get('loss'))}, batch acc {percent(ev.values.get('train_acc'))}")
        elif bar is not None and ev.kind == "stage":
            bar.set_postfix_str(ev.message)
        elif bar is not None and ev.kind == "epoch":
            bar.write(f"epoch {ev.epoch}/{cfg.epochs}  {_epoch_line(ev.values, declared)}")
        elif ev.kind == "end":
            status = ev.status
            if bar is not None:
                bar.close()
            print(f"{ev.status}. {ev.message}".strip())
    finish_world(world)
    return 0 if status == "complete" else 1


def cmd_list(a: argparse.Namespace, store: RunStore) -> int:
    _print_runs(store.list(), a.json)
    return 0


def _print_runs(runs: list[RunInfo], as_json: bool) -> None:
    """Runs as a table (or JSON): what `list` and `trash` print."""
    if as_json:
        print(json.dumps([{"run_id": r.run_id, "status": r.status, "label": r.label, "demo": r.read_only,
                           "summary": r.summary, "message": r.message} for r in runs], indent=2))  # fmt: skip
        return
    rows = [("RUN", "STATUS", "SOURCE", "TARGET", "DESCRIPTION")]
    rows += [(r.run_id, r.status + (" (demo)" if r.read_only else ""), percent(r.summary.get("source_acc")),
              percent(r.summary.get("target_acc")), r.message if r.status == "damaged" else r.label)
             for r in runs]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


def cmd_delete(a: argparse.Namespace, store: RunStore) -> int:
    try:
        where = store.delete(a.run_id)
    except PermissionError as e:  # a demo run: a refusal, not a store that cannot be used
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"moved run {a.run_id} to the trash ({where}); bring it back with: python -m vizcore restore {a.run_id}")
    return 0


def cmd_restore(a: argparse.Namespace, store: RunStore) -> int:
    run = store.restore(a.run_id)
    print(f"restored run {run.run_id} ({run.path})")
    return 0


def cmd_trash(a: argparse.Namespace, store: RunStore) -> int:
    runs = store.trash()
    if not runs and not a.json:
        print("the trash is empty")
        return 0
    _print_runs(runs, a.json)
    return 0


def cmd_show(a: argparse.Namespace, store: RunStore) -> int:
    run = store.get(a.run_id)
    cfg, st, summary = run.config(), run.status(), run.summary()
    if a.json:
        print(json.dumps({"config": cfg.to_dict(), "status": st, "summary": summary}, indent=2))
        return 0
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.get("created", 0))) if st.get("created") else MISSING
    lines = [
        ("run", run.run_id + ("  (shipped demo, read-only)" if run.read_only else "")),
        ("what", cfg.label),
        ("status", st.get("status", MISSING) + (f": {st['message']}" if st.get("message") else "")),
        ("created", when),
        ("data", cfg.source + (f" → {cfg.target}" if cfg.target else "")),
        ("model", f"{cfg.model}, method {cfg.method}"),
        *((f"starts from ({role})", rid) for role, rid in lineage(run).items()),
        ("trained", f"{summary.get('epochs_done', MISSING)} of {cfg.epochs} epochs, {summary.get('steps', MISSING)} steps"),
        ("source test accuracy", percent(summary.get("source_acc"))),
        ("target test accuracy", percent(summary.get("target_acc")) if cfg.target else MISSING),
        ("weights", str(run.path / "model.safetensors") if run.has_weights() else "none"),
    ]
    width = max(len(k) for k, _ in lines)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in lines))
    print(f"\nfull config and status: python -m vizcore show {run.run_id} --json")
    return 0


def cmd_analyze(a: argparse.Namespace, store: RunStore) -> int:
    """Compute runs' analyses ahead of time, e.g. on the GPU server that trained them."""
    from vizcore.views.precompute import precompute

    for rid in a.run_ids:
        run = store.get(rid)
        precompute(run, lambda stage, rid=rid: print(f"{rid}: {stage}", flush=True))
    return 0


def _sweep_parser(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser("sweep", help="run a grid or a search of ordinary runs (Optuna); start it on several "
                        "machines with one --storage URL to share the work")  # fmt: skip
    sw.add_argument("name", help="the sweep's name: its study, and the tag of its runs")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config field every trial shares")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a field's values; trials are the product")
    sw.add_argument("--search", action="append", default=[], metavar="KEY=LOW:HIGH[:log]",
                    help="a range (or values A,B,C) the TPE sampler searches; needs --trials")  # fmt: skip
    sw.add_argument("--trials", type=int, default=0, help="trials of a search, over all workers")
    sw.add_argument("--objective", default="source_acc", help="the validator a search maximises (no target labels)")
    sw.add_argument("--validators", action="store_true", help="compute every validator after each trial")
    sw.add_argument("--prune", action="store_true", help="stop trials below the median source accuracy at an epoch")
    sw.add_argument("--storage", default=None, help="database URL (default: SQLite in the store's .sweeps/)")
    sw.add_argument("--recipe", action="store_true", help="each trial starts from its method's recommended config")
    sw.add_argument("--stale-after", type=float, default=1800.0, metavar="SECONDS",
                    help="a trial of another machine silent this long is taken to be dead and run again")  # fmt: skip
    sw.add_argument("--max-trials", type=int, default=None, help="stop this worker after this many trials")


def cmd_sweep(a: argparse.Namespace, store: RunStore) -> int:
    from vizcore.app.sweep import run_sweep
    from vizcore.app.sweep_spec import parse_spec

    spec = parse_spec(a.name, a.set, a.grid, a.search, trials=a.trials, objective=a.objective, prune=a.prune,
                      validators=a.validators, recipe=a.recipe)  # fmt: skip

    def line(r) -> None:  # noqa: ANN001
        value = MISSING if r.value is None else fmt(r.value)
        print(f"trial {r.number} {r.status}  {r.point}  {spec.objective} {value}  run {r.run_id}", flush=True)

    done = run_sweep(spec, store, a.storage, max_trials=a.max_trials, stale_after=a.stale_after, report=line)
    print(f"{len(done)} trial{'s' if len(done) != 1 else ''} run by this worker; sweep {spec.name!r}")
    return 0 if all(r.status != "failed" for r in done) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vizcore", description=__doc__)
    ap.add_argument("--runs", default=None, help="run store folder (default: runs/ or $VIZCORE_RUNS)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tp = _train_parser(sub)
    ls = sub.add_parser("list", help="list runs")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    sh = sub.add_parser("show", help="show one run's config, status and summary")
    sh.add_argument("run_id")
    sh.add_argument("--json", action="store_true", help="the whole config, status and summary as JSON")
    an = sub.add_parser("analyze", help="compute what the views read (per-run analysis, default matrices)")
    an.add_argument("run_ids", nargs="+", metavar="run_id")
    de = sub.add_parser("delete", help="move a run to the store's trash (.trash/), from where restore brings it back")
    de.add_argument("run_id")
    re_ = sub.add_parser("restore", help="move a run back from the trash")
    re_.add_argument("run_id")
    tr = sub.add_parser("trash", help="list the runs in the trash")
    tr.add_argument("--json", action="store_true", help="machine-readable output")
    _sweep_parser(sub)
    a = ap.parse_args(argv)
    try:
        store = RunStore(a.runs) if a.runs else RunStore()
        if a.cmd == "train" and a.recipe:
            # the recipe becomes the parser's defaults, so flags given explicitly still win
            from vizcore.methods.recipes import recommended_config

            root = {"data_root": a.data_root} if a.data_root else {}  # where the recipe measures
            rec = recommended_config(a.method, a.source, a.target, **root).to_dict()
            tp.set_defaults(**{k: v for k, v in rec.items() if k != "method_params"})
            a = ap.parse_args(argv)
            a.recipe_params = rec["method_params"]
        commands = {"train": cmd_train, "list": cmd_list, "show": cmd_show, "analyze": cmd_analyze,
                    "delete": cmd_delete, "restore": cmd_restore, "trash": cmd_trash, "sweep": cmd_sweep}  # fmt: skip
        return commands[a.cmd](a, store)
    except (LookupError, ValueError, WorldError, DataUnavailable, StoreWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the store's folder cannot be read or made: say which, without a traceback
        print(f"error: the run store cannot be used: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
