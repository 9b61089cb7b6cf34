"""Train: configure a run, start it in the background, watch it live, stop it."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages._access import guard, page_link
from pages._live import live_panel
from pages._params import param_widgets
from pages._shared import class_map_of, friendly_errors, run_label, session_id, store
from vizcore.app.jobs import MANAGER
from vizcore.core.config import TrainConfig
from vizcore.core.device import available_devices
from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import DomainMismatch, domain_info
from vizcore.data.pairs import check_domain_pair
from vizcore.methods import METHODS, Method, list_methods
from vizcore.methods.recipes import recipe_notes, recommended_config
from vizcore.models import list_models
from vizcore.train.checks import REFUSALS, check_config
from vizcore.train.optim import OPTIMIZERS, SCHEDULES
from vizcore.views.data_choices import data_choices, shown_names

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Train")


def _domain_help(name: str) -> str:
    try:
        return domain_info(name).description
    except DataUnavailable as e:  # a registered folder that is gone
        return str(e)


def lineage_widgets(cls: type, source: str) -> dict[str, object]:
    """Parent, teacher, frozen blocks and the labelled budget, for a method that uses them."""
    complete = [r for r in store().list() if r.status == "complete"]
    labels = {r.run_id: run_label(r) for r in complete}
    out: dict[str, object] = {}
    needs = cls.requires
    if "init_from" in needs or "target_labels_per_class" in needs:
        if not complete:
            st.warning("This method starts from a trained run: train one first (e.g. source only).")
            return {"missing": True}
        out["init_from"] = st.selectbox("Start from (parent run)", [r.run_id for r in complete],
                                        format_func=labels.get, key="train_parent",
                                        help="a complete run whose weights this run starts from")  # fmt: skip
    if "teacher" in needs:
        same = [r for r in complete if r.source == source] or complete
        if not same:
            st.warning("Distillation needs a trained teacher run: train one first.")
            return {"missing": True}
        out["teacher"] = st.selectbox("Teacher run", [r.run_id for r in same], format_func=labels.get,
                                      key="train_teacher", help="its softened outputs are the student's targets")  # fmt: skip
    if "target_labels_per_class" in needs:
        c1, c2 = st.columns(2)
        out["freeze"] = int(c1.number_input("Frozen conv blocks", 0, 3, 2, key="train_freeze",
                                            help="the first k conv blocks keep the parent's weights and "
                                            "BatchNorm statistics; the rest is retrained"))  # fmt: skip
        out["target_labels_per_class"] = int(c2.number_input("Labelled target images per class", 1, 1000, 10,
                                                             key="train_k", help="drawn with the seed from the "
                                                             "target training split; the test split stays held out"))  # fmt: skip
    return out


def config_form(why: DeltaGenerator) -> TrainConfig | None:
    """The training form; ``why`` receives the reasons behind the recipe it starts from."""
    methods = list_methods()
    method = st.selectbox("Method", methods, format_func=lambda m: METHODS.get(m).label or m,
                          help="source only, or a domain-adaptation method", key="train_method")  # fmt: skip
    cls = METHODS.get(method)
    st.caption(cls.description)
    uses_target = cls.uses_target
    # fine-tuning draws its labelled images from a target domain, so it needs one too
    needs_target = uses_target or "target_labels_per_class" in cls.requires
    choices, registry_problem = data_choices(store().root)  # the bundled sets, then the registered folders
    if registry_problem:
        st.warning(registry_problem)
    domains = [c.domain for c in choices]
    missing = {c.domain: c.missing for c in choices if c.missing}  # offered, marked, explained
    labels = {c.domain: c.label for c in choices}
    names = {c.domain: c.shown for c in choices}

    def shown(d: str | None) -> str:
        return "—" if d is None else labels.get(d, d)

    source = st.selectbox("Data set (labelled source)", domains, format_func=shown, key="train_source",
                          help="; ".join(f"{shown(d)}: {_domain_help(d)}" for d in domains))  # fmt: skip
    st.caption(_domain_help(source))
    if source in missing:
        st.warning(f"{names[source]} is not on this machine, so it cannot train here: {missing[source]}")
        if source.startswith("folder:"):
            return None
    page_link(st, "pages/data.py", label="Add your own images (a folder or a zip)", icon=":material/folder_open:")
    target_choices = [d for d in domains if d != source]
    if needs_target:
        what = "unlabelled" if uses_target else "K labelled images per class"
        target = st.selectbox(f"Target domain ({what})", target_choices, format_func=shown,
                              index=target_choices.index("mnist-m") if "mnist-m" in target_choices else 0,
                              help="target labels are used only to report accuracy, never to train")  # fmt: skip
    else:
        target = st.selectbox("Also evaluate on (optional)", [None, *target_choices],
                              format_func=shown)  # fmt: skip
    if target in missing:
        st.warning(f"{names[target]} is not on this machine, so it cannot be used here: {missing[target]}")
        if target.startswith("folder:"):
            return None
    class_map = class_map_of(source, target)  # chosen on the Your data page
    try:
        check_domain_pair(source, target, class_map=class_map or None)
    except DomainMismatch as e:  # e.g. digits against fashion-mnist: accuracy would mean nothing
        st.error(str(e))
        st.caption("A class map for this pair can be chosen on the **Your data** page.")
        return None
    if class_map:
        st.caption("Class map (from the Your data page): " + ", ".join(f"{t}→{s}" for t, s in class_map.items()))
    lineage = lineage_widgets(cls, source)
    if lineage.pop("missing", False):
        return None
    base = recommended_config(method, source, target)
    with why.expander("Why these defaults"):
        st.markdown("\n".join(f"- {note}" for note in recipe_notes(method, source, target)))
    with st.form("train"):
        c1, c2 = st.columns(2)
        epochs = c1.number_input("Epochs", 1, 200, base.epochs)
        batch = c2.selectbox("Batch size", [32, 64, 128, 256, 512], index=[32, 64, 128, 256, 512].index(base.batch_size))
        lr = c1.number_input("Learning rate", 1e-5, 10.0, base.lr, format="%.4g")
        seed = c2.number_input("Seed", 0, 10_000, base.seed)
        device = c1.selectbox("Device", available_devices(), help="auto = CUDA, else Apple MPS, else CPU")
        name = c2.text_input("Run name (optional)")
        trade_off = base.trade_off
        params = dict(base.method_params)
        if uses_target and cls.transfer_loss is not Method.transfer_loss:  # a weighted transfer loss
            trade_off = st.number_input("λ (transfer-loss weight)", 0.0, 100.0, base.trade_off, format="%.3g")
        params.update(param_widgets(cls.params, f"param_{method}_", values=params))
        widths = None
        if "teacher" in cls.requires:  # a student smaller than its teacher
            widths = st.selectbox("Student conv widths", [None, (8, 16), (16, 32), (32, 64)],
                                  format_func=lambda w: "the model's own" if w is None else ", ".join(map(str, w)),
                                  index=1, help="channels of each conv block of the student")  # fmt: skip
        with st.expander("Advanced"):
            a1, a2 = st.columns(2)
            optimizer = a1.selectbox("Optimizer", OPTIMIZERS.names(), index=OPTIMIZERS.names().index(base.optimizer))
            schedule = a2.selectbox("LR schedule", SCHEDULES.names(), index=SCHEDULES.names().index(base.schedule))
            momentum = a1.number_input("Momentum", 0.0, 0.999, base.momentum)
            wd = a2.number_input("Weight decay", 0.0, 1.0, base.weight_decay, format="%.2g")
            limit = a1.number_input("Training images (0 = all)", 0, 1_000_000, base.train_limit or 0, step=500)
            models = list_models()
            model = a2.selectbox("Model", models, index=models.index(base.model) if base.model in models else 0)
            shift = a1.number_input("Random shift (pixels)", 0, 8, base.augment_shift,
                                    help="augmentation: translate each training image by up to this many pixels")  # fmt: skip
            generated = domain_info(source).generated  # only a generated source has layouts to redraw
            fresh = st.checkbox("Fresh layouts every epoch", base.fresh_layouts, disabled=not generated,
                                help="redraw a generated source (clutter, photo patches) each epoch, "
                                "so the network cannot memorise the layouts")  # fmt: skip
            invert = a2.number_input("Invert source intensities (probability)", 0.0, 1.0, base.augment_invert,
                                     step=0.1, help="augmentation: show a source image as 1 - x, a dark "
                                     "stroke on a light ground, with this probability")  # fmt: skip
            precise = st.checkbox("Precise BatchNorm", base.precise_bn,
                                  help="recompute BatchNorm statistics over the training batches before "
                                  "each evaluation instead of using the running average")  # fmt: skip
            # the target terms act in the shared loss of the adaptation methods (not ADDA's own step)
            shared = cls.uses_shared_loss()
            domain_bn = st.checkbox("Domain-specific BatchNorm", base.domain_bn, disabled=not shared,
                                    help="normalise source and target batches by their own statistics; "
                                    "each test split is read with its own domain's")  # fmt: skip
            im = st.number_input("Information maximisation on the target (weight)", 0.0, 100.0, base.target_im,
                                 step=0.1, disabled=not shared, help="confident target predictions with "
                                 "every class kept in use (0 = off)")  # fmt: skip
        submitted = st.form_submit_button("Train", type="primary")
    if not submitted:
        return None
    return base.replace(
        epochs=int(epochs), batch_size=int(batch), lr=float(lr), seed=int(seed), device=device, name=name,
        trade_off=float(trade_off), method_params=params, optimizer=optimizer, schedule=schedule,
        momentum=float(momentum), weight_decay=float(wd), train_limit=int(limit) or None, model=model,
        augment_shift=int(shift), fresh_layouts=bool(fresh) and generated, augment_invert=float(invert),
        precise_bn=bool(precise), domain_bn=bool(domain_bn) and shared,
        target_im=float(im) if shared else 0.0, widths=widths, class_map=class_map,
        data_names=shown_names(choices, source, target), **lineage,
    )  # fmt: skip


def start(cfg: TrainConfig) -> None:
    # refused here in the command line's words, before any job or run folder exists
    try:
        check_config(cfg)
    except REFUSALS as e:
        st.error(f"Training could not start: {e}")
        return
    job = MANAGER.start(cfg, store(), owner=session_id())
    if job.error or job.run_id is None:
        st.error(f"Training could not start: {job.error or 'no run was created'}")
        return
    st.session_state["watch"] = job.run_id


left, right = st.columns([1, 2], gap="large")
why = right.container()  # above the live panel: the reasons need more room than the form's column
with left:
    with friendly_errors("the training form"):
        cfg = config_form(why)
    if cfg is not None:
        with st.spinner("Starting…"):
            start(cfg)
with right:
    live_panel()
