"""Your data: a folder on the server or a zip, read exactly as training reads it, checked against
a source domain, and registered by name for the Train page and every view."""

from __future__ import annotations

import streamlit as st

from pages._access import guard
from pages._figures import figure, presentation
from pages._shared import friendly_errors, keep_class_map, store
from vizcore.core.numbers import count
from vizcore.core.uploads import MAX_UPLOAD_MB
from vizcore.data.domains import domain_info
from vizcore.data.sources.folders import FOLDER_HELP
from vizcore.figures.cam import sample_grid
from vizcore.store.datasets import forget_folder, read_registry, register_folder
from vizcore.views import datasets as dv
from vizcore.views.archives import ZipLimits, extract_zip
from vizcore.views.data_choices import choice_rows, data_choices, download, network_reason

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Your data")
st.caption("Bring a folder with one sub-folder per class (or train/ and test/ folders holding them): see what a "
           "run would read from it, check it against a source domain, and register it by name for the Train page.")
with st.expander("How a folder is read"):
    st.markdown(FOLDER_HELP)
ROOT = store().root
LIMITS = ZipLimits()
registry = read_registry(ROOT)
if registry.problem:
    st.warning(registry.problem)

WAYS = ("A folder on this server", "A zip file", "A registered folder")
# kept outside the widgets' own state, which Streamlit drops on a visit to another page
KEPT = "_data_kept"
kept = st.session_state.setdefault(KEPT, {})
offered = WAYS if registry.folders else WAYS[:2]
way = st.radio("Where are the images?", offered, horizontal=True, key="data_way",
               index=offered.index(kept.get("way", WAYS[0])) if kept.get("way", WAYS[0]) in offered else 0)  # fmt: skip
kept["way"] = way
folder, suggested = None, ""
if way == WAYS[0]:
    folder = st.text_input("Folder path on this server", kept.get("path", ""), key="data_path", placeholder="/data/my_images",
                           help="the folder that holds train/ and test/, or one sub-folder per class") or None  # fmt: skip
    kept["path"] = folder or ""
elif way == WAYS[1]:
    st.caption(f"Up to {MAX_UPLOAD_MB} MB; at most {LIMITS.max_files:,} files and {LIMITS.max_total_bytes / 1024**3:g} GB "
               f"unpacked; no links, no paths that leave the zip, no image over {LIMITS.max_pixels:,} pixels. "
               f"Only images are unpacked, into {ROOT / '.datasets'}/<name>/.")  # fmt: skip
    upload = st.file_uploader("Zip of images", type=["zip"], key="data_zip")
    name = st.text_input("Name for it", key="data_zip_name", placeholder="my-images",
                         help="letters, digits, '-' or '_'; the folder it is unpacked to and its name on every page")  # fmt: skip
    if upload is not None and st.button("Unpack", type="primary", disabled=not name):
        with friendly_errors("the zip (nothing was written)", doing="unpack"):
            got = extract_zip(upload.getvalue(), ROOT, name, LIMITS)
            st.session_state["data_unpacked"] = (str(got.folder), name)
            st.success(f"Unpacked {got.images:,} images into {got.folder}."
                       + (f" Left out (not images): {', '.join(got.left_out[:10])}" if got.left_out else ""))  # fmt: skip
    unpacked = st.session_state.get("data_unpacked")
    folder, suggested = unpacked if unpacked else (None, "")
else:
    pick = st.selectbox("Registered folder", sorted(registry.folders), key="data_registered")
    folder, suggested = str(registry.folders[pick]), pick
    if st.button(f"Forget {pick}", key="data_forget", help="the name is no longer offered; the images and the runs stay"):
        forget_folder(ROOT, pick)
        st.rerun()

if folder is None:
    st.info("Type a folder path or unpack a zip: its splits, classes, samples and problems are shown here.")
    with st.expander("Data sets offered on the Train page"):
        choices, _ = data_choices(ROOT)
        st.dataframe(choice_rows(choices), hide_index=True, width="stretch", column_config={
            "here": st.column_config.TextColumn(width="small"), "why not": st.column_config.TextColumn(width="large")})
        fetchable = [c for c in choices if c.missing and c.downloadable]
        offline = network_reason() if fetchable else None
        if offline:
            st.caption(f"No download buttons: {offline}.")
        for c in fetchable if not offline else []:
            if st.button(f"Download {c.shown}", key=f"data_dl_{c.domain}"):
                with friendly_errors(c.shown, doing="download"), st.spinner(f"Downloading {c.shown}…"):
                    download(c)
                    st.rerun()
    st.stop()

with friendly_errors("the folder"), st.spinner("Reading every image header, as training does…"):
    report = dv.inspect_folder(folder)

st.subheader(str(report.path))
for line in dv.summary_lines(report):
    (st.error if line.startswith("Cannot") else st.warning if "leakage" in line or "Empty" in line else st.markdown)(line)

left, right = st.columns(2)
left.markdown("**Images per class and split** (the images a run reads)")
left.dataframe(dv.counts_rows(report), hide_index=True, width="stretch")
right.markdown("**Image modes and sizes** (a run brings each to its input, 3x32x32 by default)")
right.dataframe(dv.kinds_rows(report), hide_index=True, width="stretch")

tiles, captions = dv.sample_images(report)
per_row = max((len(fs) for fs in report.samples.values()), default=0)
shown = min(len(report.classes), dv.MAX_GRID_CLASSES)
grid_title = "Training images of each class, as a run reads them (RGB 32x32)" + (
    f": the first {shown} of {len(report.classes)} classes" if shown < len(report.classes) else "")
figure(sample_grid(tiles, captions, per_row, grid_title,
                   presentation()), f"samples-{report.path.name}", key="data_samples", stretch=False)  # fmt: skip

st.markdown(f"**Not read: {count(len(report.skipped), 'file or link', 'files or links')}** (links are never followed; "
            "files PIL cannot read are skipped)")  # fmt: skip
if report.skipped:
    st.dataframe([{"file": f, "why": why} for f, why in report.skipped], hide_index=True, width="stretch")
st.markdown(f"**Exact duplicates across train and test: {count(report.leaked, 'test image')}** (same file bytes, sha256)")
if report.duplicates:
    st.dataframe(dv.duplicate_rows(report), hide_index=True, width="stretch")

st.subheader("Pair it with a source")
choices, _ = data_choices(ROOT)
# sources with this folder's classes first: a map by position onto unrelated classes is a guess
sources = dv.sources_by_fit([c for c in choices if c.domain != report.domain and not c.missing], report.classes)
source = st.selectbox("Source domain (labelled)", [c.domain for c in sources], key="data_source",
                      format_func={c.domain: c.shown for c in sources}.get,
                      help="the labelled data a run learns from; this folder is its unlabelled target")  # fmt: skip
if source is not None and not report.problem:
    with friendly_errors("the pair check"):
        src_classes = list(domain_info(source).class_names)
        start = dv.suggested_class_map(source, report.domain)
        edited = st.data_editor(
            [{"target class (this folder)": t, "source class": s} for t, s in start.items()],
            column_config={"source class": st.column_config.SelectboxColumn(options=src_classes, required=True)},
            disabled=["target class (this folder)"], hide_index=True, key=f"data_map_{source}",
        )  # fmt: skip
        class_map = {r["target class (this folder)"]: r["source class"] for r in edited}
        if guessed := [t for t in report.classes if t not in src_classes]:
            st.caption(f"{len(guessed)} classes have no source class of the same name and start matched by position "
                       "(e.g. " + ", ".join(f"{t}→{start[t]}" for t in guessed[:3]) + "): check the map.")  # fmt: skip
        why = dv.pair_check(source, report.domain, class_map)
    if why:
        st.error(why)
    else:
        kept = dv.effective_class_map(source, report.domain, class_map)
        renamed = [t for t, s in kept.items() if t != s]
        if renamed:
            st.info(f"They pair under this class map: a run can adapt from the source to this folder. "
                    f"{count(len(renamed), 'class', 'classes')} map onto a source class of another name; make sure "
                    "each row is right.")  # fmt: skip
        else:
            st.success("They pair: a run can adapt from the source to this folder"
                       + (" with this class map." if kept else " (same classes, no map needed)."))  # fmt: skip
        keep_class_map(source, report.domain, kept)

st.subheader("Register it")
taken = {n: p for n, p in registry.folders.items() if p == report.path}
if taken:
    st.caption(f"Registered as **{', '.join(taken)}**: offered by that name on the Train page.")
reg_name = st.text_input("Name", value=suggested or report.path.name, key=f"data_name_{report.path}")
if st.button("Register", type="primary", key="data_register", disabled=bool(report.problem),
             help="offered by this name on the Train page; its runs show it on every page"):  # fmt: skip
    with friendly_errors("the folder", doing="register"):
        register_folder(ROOT, reg_name, report.path)
        st.success(f"Registered **{reg_name}**: pick it on the Train page.")
        taken = {reg_name: report.path}
if taken and st.button("Train on it", icon=":material/model_training:", key="data_train",
                       help="opens the Train page with this folder as the labelled source"):  # fmt: skip
    st.session_state["train_source"] = report.domain
    st.switch_page("pages/train.py")
