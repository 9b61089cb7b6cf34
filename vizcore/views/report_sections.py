"""The sections of a report, each registered with :func:`~vizcore.views.report_parts.section`
in the order a reader meets them; each computes through the same cached analyses as the pages."""

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vizcore.core.config import TrainConfig
from vizcore.core.numbers import MISSING, VERDICT_MARKS, column_format, fmt, percent
from vizcore.embed.methods import EMBED_VERSION, embed
from vizcore.embed.registry import describe
from vizcore.figures import class_color
from vizcore.figures.cam import cam_grid, mean_cam_figure
from vizcore.figures.matrix import MatrixPanel, difference_heatmap, matrix_figure
from vizcore.figures.scatter import embedding_scatter, pair_figure
from vizcore.figures.sweeps import validator_scatter
from vizcore.figures.training import training_curves
from vizcore.methods import curves_of
from vizcore.metrics.domain import (
    REPORT_COLUMNS,
    class_silhouette,
    embedding_report,
    knn_class_accuracy_2d,
    layout_trustworthiness,
)
from vizcore.metrics.validators import VALIDATORS
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.views.analysis import (
    cam_analysis,
    cam_maps,
    eval_domain,
    eval_images,
    feature_arrays,
    localization_summary,
    mean_cams,
    select_images,
)
from vizcore.views.distances import class_matrix, cross_matrix, default_layer
from vizcore.views.embedding_reading import report_table
from vizcore.views.embeddings import (
    K_LAYOUT,
    EmbeddingSettings,
    choose_points,
    common_layers,
    embedding_pair,
)
from vizcore.views.explanations import (
    best_methods,
    faithfulness_table,
    scored_methods,
    table_columns,
    verdict,
)
from vizcore.views.matrices import difference, hover_info
from vizcore.views.report_parts import (
    SECTIONS,
    Context,
    Html,
    ReportOptions,
    Section,
    html_table,
    section,
)
from vizcore.views.sweeps import sweep_of, sweep_runs, verdicts
from vizcore.views.validation import has_scores, validator_scores


@section("summary", "At a glance")
def _summary(ctx: Context, sec: Section) -> None:
    """One screen first: the runs, their accuracies and what changed; the configuration is the appendix."""
    rows, accs = [], []
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        summ = run.summary()
        accs.append((summ.get("source_acc"), summ.get("target_acc")))
        rows.append({"run": name, "method": cfg.method, "data": cfg.source + (f" → {cfg.target}" if cfg.target else ""),
                     "epochs": summ.get("epochs_done", MISSING), "source accuracy": percent(accs[-1][0]),
                     "target accuracy": percent(accs[-1][1]), "run id": Html(f"<span class='mono'>{html.escape(run.run_id)}</span>")})  # fmt: skip
    sec.raw(html_table(rows, "summary"))
    if ctx.comparison:
        lines = [f"{side} accuracy {percent(b)} → {percent(a)} ({100 * (a - b):+.1f} points)"
                 for side, b, a in zip(("Source", "Target"), accs[0], accs[1], strict=True)
                 if isinstance(a, float | int) and isinstance(b, float | int)]  # fmt: skip
        if lines:
            sec.raw("<p class='headline'>" + "<br>".join(html.escape(x) for x in lines) + "</p>")
    sec.text("Accuracies on each domain's held-out test split after the last epoch (target labels are never used "
             "in training). The full configuration of every run is in the appendix at the end.")  # fmt: skip


def _setup(ctx: Context, sec: Section) -> None:
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        sec.raw(f"<h3>{html.escape(name)}</h3><p class='mono'>run {html.escape(run.run_id)}</p>")
        summary = run.summary()
        if "provenance" in summary:
            sec.text(f"Weights: {summary['provenance']} (not trained here).")
        rows = [{"setting": k, "value": v if v not in (None, "", {}) else "—"} for k, v in cfg.to_dict().items()]
        sec.raw(html_table(rows, "config"))
        for side in ctx.sides(cfg):
            dom = eval_domain(cfg, side)
            sec.text(f"{side.capitalize()} data ({getattr(cfg, side)}, test split of {len(dom):,} images): "
                     f"{dom.provenance}")  # fmt: skip


@section("training", "Training curves")
def _training(ctx: Context, sec: Section) -> None:
    for name, run in zip(ctx.names(), ctx.runs, strict=True):
        records = run.metrics()
        if not any(r.get("kind") == "step" for r in records):
            sec.text(f"{name}: no training records (an uploaded checkpoint, or stopped before the first step).")
            continue
        steps, epochs = curves_of(run.config().method)
        sec.figure(training_curves(records, title=name, presentation=ctx.options.presentation, curves=steps,
                                   epoch_curves=epochs))  # fmt: skip
    sec.text("Loss and batch accuracy per logged step; test accuracies after each epoch on the held-out split.")


def _class_accuracy(arrays: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    preds, labels = arrays["probs"].argmax(1), arrays["labels"]
    per = np.array([(preds[labels == k] == k).mean() if (labels == k).any() else np.nan
                    for k in range(arrays["probs"].shape[1])])  # fmt: skip
    return float((preds == labels).mean()), per


def _swatch(k: int) -> Html:
    return Html(f'<span class="swatch" style="background:{class_color(k)}"></span>{k}')


@section("accuracy", "Accuracy")
def _accuracy(ctx: Context, sec: Section) -> None:
    overall, per_class = [], {}
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        summ = run.summary()
        for side in ctx.sides(cfg):
            acc, per = _class_accuracy(cam_analysis(run, side, "predicted"))
            overall.append({"run": name, "domain": f"{side} ({getattr(cfg, side)})", "test accuracy": percent(acc),
                            "epochs": summ.get("epochs_done", MISSING), "status": run.status().get("status", "")})  # fmt: skip
            per_class[f"{name} · {side}"] = per
    sec.raw(html_table(overall))
    n = max(len(v) for v in per_class.values())
    rows = [{"class": _swatch(k), **{col: percent(v[k]) if k < len(v) else "—" for col, v in per_class.items()}}
            for k in range(n)]  # fmt: skip
    sec.raw("<h3>Per class</h3>" + html_table(rows, "per-class"))
    sec.text("Test accuracy over the whole held-out split; target labels are used only for this table, never "
             "in training. The colour of each class is the one it has in every figure.")  # fmt: skip


@section("cam", "Class activation maps")
def _cam(ctx: Context, sec: Section) -> None:
    o = ctx.options
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        for side in ctx.sides(cfg):
            arrays = cam_analysis(run, side, "predicted")
            idx = select_images(arrays, "all", None, o.cam_images, o.seed)
            probs, labels = arrays["probs"], arrays["labels"]
            titles = [f"pred {probs[i].argmax()} ({probs[i].max():.0%}) · true {labels[i]}" for i in idx]
            boxes = arrays["boxes"][idx] if "boxes" in arrays else None
            maps = cam_maps(run, side, idx, arrays["class_idx"][idx])
            sec.figure(cam_grid(eval_images(run, side, idx), maps, titles, cols=6,
                                boxes=boxes, title=f"{name} — {side} ({getattr(cfg, side)}), CAM of the predicted class",
                                presentation=o.presentation))  # fmt: skip
            loc = localization_summary(arrays)
            if loc:
                sec.text(f"Localisation ({side}, {int(loc['n'])} test images): pointing game {loc['pointing_game']:.1%} "
                         f"(CAM peak inside the digit's box), energy in box {loc['energy_in_box']:.1%} (share of "
                         "the normalised CAM inside the box).")  # fmt: skip
            else:
                sec.text(f"Localisation score: not available for {getattr(cfg, side)} (its images have no object "
                         "boxes; cluttered-mnist has them).")  # fmt: skip
            mean = mean_cams(run, side, "predicted")
            fig = mean_cam_figure(mean, [str(k) for k in range(len(mean))], presentation=o.presentation,
                                  title=f"{name} — {side}: mean CAM of the predicted class, by true class")  # fmt: skip
            sec.figure(fig)
    sec.text("CAM (Zhou et al. 2016): M_k = Σ_c w[k, c]·A_c of the last conv maps, bilinearly upsampled and min-max "
             "normalised per image (jet colour map, 50 % over the image).")  # fmt: skip


@section("faithfulness", "Explanation methods: faithfulness and localisation")
def _faithfulness(ctx: Context, sec: Section) -> None:
    cols = table_columns()
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        scored = scored_methods(run, "source") if run.has_weights() else []
        if not scored:
            sec.text(f"{name}: no explanation method has been scored yet (the CAM page's Faithfulness tab scores "
                     "them once per run; the report reads the stored table).")  # fmt: skip
            continue
        rows = faithfulness_table(run, "source", scored)
        best = best_methods(rows)
        shown = [{"method": r["method"], **{f"{h} {'↓' if b == 'lower' else '↑'}":
                  Html(f"<b>{fmt(float(r[c]))}</b>") if best.get(c) == r["method"] else float(r[c])
                  for c, (h, b) in cols.items() if c in r}} for r in rows]  # fmt: skip
        sec.raw(f"<h3>{html.escape(name)} — source ({html.escape(cfg.shown(cfg.source))}), first {int(rows[0]['n'])} test "
                "images</h3>" + html_table(shown, "faithfulness"))  # fmt: skip
        sec.text(verdict(rows))
    sec.text("Each method's map of the predicted class. Deletion / insertion AUC (RISE, Petsiuk et al. 2018), ROAD "
             "MoRF / LeRF (Rong et al. 2022, noisy linear imputation, mean over 10–90 % removed), average drop / "
             "increase in confidence (Chattopadhay et al. 2018), pointing game and energy in box where the images "
             "have object boxes. ↓ lower is better, ↑ higher is better; the best of each column in bold.")  # fmt: skip


def _matrix_fig(view, title: str, o: ReportOptions, axes: tuple[str, str] = ("class", "class")) -> go.Figure:
    panel = MatrixPanel(view.values, view.p_values, view.row_labels, view.col_labels, title, hover_info(view))
    return matrix_figure([panel], title, presentation=o.presentation, value_label=view.value_label,
                         axis_titles=axes, caption=view.description)  # fmt: skip


@section("distances", "Class distance matrices")
def _distances(ctx: Context, sec: Section) -> None:
    o, split = ctx.options, "test"
    views: dict[tuple[int, str], Any] = {}
    for i, (name, run, cfg) in enumerate(zip(ctx.names(), ctx.runs, ctx.configs, strict=True)):
        layer = ctx.layer(run)
        for side in ctx.sides(cfg):
            views[i, side] = v = class_matrix(run, side, split, layer, o.distance)
            sec.figure(_matrix_fig(v, f"{name} — {side} ({getattr(cfg, side)}), {layer} features", o))
        if cfg.target:
            v = cross_matrix(run, split, layer, o.distance)
            sec.figure(_matrix_fig(v, f"{name} — source vs target classes, {layer} features", o,
                                   ("source class", "target class")))  # fmt: skip
    if ctx.comparison:
        for side in ctx.sides(ctx.configs[1]):
            if (0, side) in views:
                d = difference(views[1, side], views[0, side])
                sec.figure(difference_heatmap(d.values, d.row_labels, d.col_labels, f"after − before, {side}",
                                              presentation=o.presentation, caption=d.description))  # fmt: skip
    sec.text("The diagonal compares two disjoint halves of the same class: the noise floor every other entry is "
             "read against. Entries marked n.s. are not significantly different from it (permutation test).")  # fmt: skip


def _points(run: Run, cfg: TrainConfig, layer: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """Features of a seeded sample of test points per domain: x (N, D), y (N,), domain (N,), source first."""
    sides = ["source"] + (["target"] if cfg.target else [])
    feats = [feature_arrays(run, side, "test", layer) for side in sides]
    domain, index = choose_points([len(f["y"]) for f in feats], n, seed)
    parts = [{k: f[k][index[domain == d]] for k in ("x", "y", "pred")} for d, f in enumerate(feats)]
    return {**{k: np.concatenate([p[k] for p in parts]) for k in ("x", "y", "pred")}, "domain": domain}


def _numbers(p: dict[str, np.ndarray], xy: np.ndarray, seed: int) -> dict[str, float]:
    """The embedding numbers of one run's layout (domain numbers only when it has a target)."""
    if (p["domain"] == 1).any():
        s, t = p["domain"] == 0, p["domain"] == 1
        return embedding_report(p["x"][s], p["y"][s], p["x"][t], p["y"][t], xy, k_layout=K_LAYOUT, seed=seed)
    return {"class_silhouette": class_silhouette(p["x"], p["y"]),
            "trustworthiness": layout_trustworthiness(p["x"], xy, k=K_LAYOUT),
            "knn_class_accuracy_2d": knn_class_accuracy_2d(xy, p["y"], k=K_LAYOUT)}  # fmt: skip


def _single_embedding(ctx: Context, sec: Section) -> None:
    o, run, cfg = ctx.options, ctx.runs[0], ctx.configs[0]
    layer = ctx.layer(run)
    p = _points(run, cfg, layer, o.embed_points, o.seed)
    # cached with the run, like the pages' layouts: a report made again is a read
    key = {"embed": EMBED_VERSION, "method": o.embed_method, "layer": layer, "n": o.embed_points, "seed": o.seed}
    xy = run.cached("report-embedding", key, lambda: {"xy": embed(p["x"], o.embed_method, o.seed)})["xy"]
    names = [cfg.shown(cfg.source)] + ([cfg.shown(cfg.target)] if cfg.target else [])
    how = f"{describe(o.embed_method, o.seed)}, on {len(xy):,} test points of {', '.join(names)}; {layer} features."
    sec.figure(embedding_scatter(xy, p["y"], p["domain"], f"{ctx.names()[0]}: {layer} features", predictions=p["pred"],
                                 domain_names=names, caption=how, presentation=o.presentation))  # fmt: skip
    rows = [{"measure": label, "value": v, "better when": better}
            for key, (label, better) in REPORT_COLUMNS.items() if np.isfinite(v := _numbers(p, xy, o.seed).get(key, np.nan))]  # fmt: skip
    sec.raw(html_table(rows, "numbers"))


def _pair_embedding(ctx: Context, sec: Section) -> None:
    o, (before, after) = ctx.options, ctx.runs
    layers = common_layers(before, after)
    layer = o.layer or default_layer(layers)
    settings = EmbeddingSettings(layer=layer, method=o.embed_method, n_per_domain=o.embed_points, seed=o.seed)
    pair = embedding_pair(before, after, settings)
    sec.figure(pair_figure([pair.before_xy, pair.after_xy], pair.labels, pair.domain, ["before", "after"],
                           predictions=[pair.pred_before, pair.pred_after], class_names=pair.class_names,
                           domain_names=pair.domain_names, title=f"{layer} features, before and after",
                           caption=pair.description, presentation=o.presentation,
                           height=720 if o.presentation else 560))  # fmt: skip  # ten large legend entries
    table = report_table(pair)
    cols = {c: column_format(table[c].tolist(), signed=c == "change") for c in ("before", "after", "change")}
    rows = [{"measure": m, **{c: w(r[c]) for c, w in cols.items()}, "verdict": VERDICT_MARKS[r["verdict"]]}
            for m, r in table.to_dict("index").items()]  # one format per column  # fmt: skip
    sec.raw(html_table(rows, "numbers"))


@section("embeddings", "Embeddings")
def _embeddings(ctx: Context, sec: Section) -> None:
    (_pair_embedding if ctx.comparison else _single_embedding)(ctx, sec)
    sec.text("Colour = class (the same colours as everywhere in the app), symbol = domain. Silhouette, A-distance "
             "and kNN accuracies are measured on the features themselves; trustworthiness and the 2-D kNN accuracy "
             "on the layout, i.e. how far the picture can be trusted.")  # fmt: skip


@section("validators", "Choosing without target labels")
def _validators(ctx: Context, sec: Section) -> None:
    """Each adaptation run's validator scores (where computed) and, for a trial of a sweep, how well
    each validator picks among the sweep's runs (vizcore.views.sweeps)."""
    for name, run, cfg in zip(ctx.names(), ctx.runs, ctx.configs, strict=True):
        if not cfg.target:
            sec.text(f"{name}: not an adaptation run; validators score runs with a target domain.")
        elif (sweep := sweep_of(run)) is not None:
            runs = sweep_runs(RunStore(run.path.parent, demo_root=None), sweep)
            judged, oracle = verdicts(runs)
            sec.raw(f"<h3>{html.escape(name)}: sweep {html.escape(sweep)}</h3>")
            sec.raw(html_table([{"validator": v.label, "Spearman ρ": v.spearman, "weighted ρ": v.weighted_spearman,
                             "its pick": v.pick, "pick's target acc": percent(v.pick_acc), "cost (points)": 100 * v.cost}
                            for v in judged]))  # fmt: skip
            sec.figure(validator_scatter(runs, judged, oracle.run_id, ctx.options.presentation))
        elif has_scores(run):
            sec.raw(html_table([{"run": name, **{VALIDATORS.get(k).label: v for k, v in validator_scores(run).items()
                                             if k in VALIDATORS}}]))  # fmt: skip
        else:
            sec.text(f"{name}: validator scores not computed yet (the Sweeps page or `sweep --validators`).")
    sec.text("Scores from the target training images without their labels; higher is a better pick. The "
             "target test accuracy judges them (Spearman, and weighted Spearman after Musgrave et al. 2022).")  # fmt: skip


SECTIONS.add("setup", ("Appendix: configuration and data provenance", _setup))  # last: the raw settings
