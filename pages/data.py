"""Data page: open or create a project, ingest data, read the ingest report, embed, and browse items."""

from pathlib import Path

import streamlit as st

from adde_core.ui.feedback import progress_bar, run_action
from adde_core.ui.grid import image_grid
from adde_core.ui.state import current_project, require_shell, switch_project
from adde_core.ui.text import md, md_columns

require_shell("pages/data.py")
project = current_project()
st.title("Data")
st.caption(f"Project **{md(project.name)}** · {md(project.root)}")

with st.expander("Open or create another project"):
    path = st.text_input("Project folder", placeholder="/path/to/my_project")
    database_url = st.text_input(
        "Database URL (optional, when creating)", key="create_database_url", type="password",
        placeholder="postgresql+psycopg://user:password@host:5432/adde",
        help="Leave empty for a private SQLite database inside the folder. Teammates who create their folders on "
             "the same PostgreSQL database share items, embeddings, maps, candidates and decisions.")

    def _create(folder: str, url: str) -> object:
        from adde_core.project import Project

        Project.create(folder, database_url=url.strip() or None).close()
        return switch_project(folder)

    c1, c2 = st.columns(2)
    if c1.button("Open project", disabled=not path) and run_action(switch_project, path):
        st.rerun()
    if c2.button("Create project", disabled=not path) and run_action(_create, path, database_url):
        st.rerun()

report = project.last_ingest_report()
if report is not None and report.n_rejected:
    st.warning(f"The last ingest rejected {report.n_rejected} files or rows: see the **Ingest** tab for each reason.")
browse_tab, ingest_tab, embed_tab = st.tabs(["Browse", "Ingest", "Embed"])

with ingest_tab:
    folder_tab, manifest_tab = st.tabs(["Image folder", "Manifest (+ embeddings)"])
    with folder_tab:
        folder = st.text_input("Folder with one sub-folder per class", key="ingest_folder")
        role = st.selectbox("Role of these items", ["seed", "pool", "val", "ood"], key="ingest_folder_role")
        if st.button("Ingest folder", disabled=not folder):
            run_action(project.ingest_folder, folder, role=role, progress=progress_bar("Validating images"))
    with manifest_tab:
        manifest = st.text_input("CSV or Parquet manifest (columns: path, label, role, attributes…)", key="ingest_manifest")
        data_root = st.text_input("Data root (default: the manifest's folder)", key="ingest_root")
        embeddings = st.text_input("Precomputed embeddings, optional (.npy in manifest order, or .parquet with id)",
                                   key="ingest_emb")
        default_role = st.selectbox("Role for rows without one", ["seed", "pool", "val", "ood"], key="ingest_role")
        if st.button("Ingest manifest", disabled=not manifest):
            run_action(project.ingest_manifest, manifest, data_root=Path(data_root) if data_root else None,
                       embeddings=Path(embeddings) if embeddings else None, default_role=default_role,
                       progress=progress_bar("Validating rows"))

    report = project.last_ingest_report()  # re-read: an ingest may have just run above
    if report is not None:
        st.markdown(f"**Last ingest** {md(report.source)}")
        m1, m2 = st.columns(2)
        m1.metric("Loaded", f"{report.n_loaded:,}", help="By role: " + (", ".join(
            f"{k} {v:,}" for k, v in sorted(report.loaded_by_role.items())) or "none"))
        m2.metric("Rejected", report.n_rejected, help="Files or rows that were not loaded; see the table for why.")
        if report.issues:
            st.dataframe(report.to_frame(), width="stretch", hide_index=True)
        else:
            st.success("No problems found in this input.")

    st.markdown("**Subgroup attribute**")
    names = project.attribute_names()
    current_subgroup = project.subgroup_attribute
    options = ["(none)", *names]
    picked = st.selectbox("Measure fairness and worst-group accuracy over", options, key="subgroup_attr",
                          index=options.index(current_subgroup) if current_subgroup in options else 0,
                          help="An item attribute (a manifest column), e.g. skin_tone or site. Trends' fairness "
                               "panel, worst-group accuracy and 'colour by subgroup' follow it.")
    chosen = None if picked == "(none)" else picked
    if chosen != current_subgroup:
        run_action(project.set_subgroup, chosen)
        if project.subgroup_attribute == chosen:
            st.success(f"Subgroup set to {md(picked)}: the next measurement uses it.")

with embed_tab:
    sets = project.embedding_sets()
    embedders, default_embedder = project.embedder_choices()
    choices = embedders + (["precomputed"] if sets["model"].str.startswith("precomputed:").any() else [])
    e1, e2, e3 = st.columns([2, 2, 1])
    model = e1.selectbox("Model", choices, index=choices.index(default_embedder))
    params: dict = {}
    if model == "efficientnet-lite0":
        params["image_size"] = e2.select_slider("Input size (px)", [112, 160, 224], value=112)
    elif model == "openclip":
        params["model_name"] = e2.text_input("OpenCLIP model", value="ViT-B-32")
        params["pretrained"] = e2.text_input("Pretrained tag or local checkpoint path",
                                             placeholder="laion2b_s34b_b79k or /weights/open_clip.safetensors") or None
    if e3.button("Embed", type="primary"):
        summary = run_action(project.embed, model, params=params, progress=progress_bar("Embedding"))
        if summary is not None and summary.n_computed == 0:
            st.success(f"{md(summary.model_key)} is up to date: {summary.n:,} items, nothing recomputed (cache hit).")
        elif summary is not None:
            st.success(f"{md(summary.model_key)}: {summary.n_computed:,} embedded, {summary.n_cached:,} from cache, "
                       f"{summary.images_per_second:,.0f} images/s.")
        sets = project.embedding_sets()
    if not sets.empty:
        st.dataframe(sets, width="stretch", hide_index=True)


with browse_tab:
    items = project.items()
    if items.empty:
        st.info("No items yet: ingest an image folder or a manifest in the **Ingest** tab.")
        st.stop()
    attrs = [c for c in project.attribute_names() if items[c].nunique() <= 50]
    f1, f2, f3 = st.columns(3)
    roles = f1.multiselect("Role", sorted(items["role"].unique()), key="browse_roles")
    labels = f2.multiselect("Label", sorted(items["label"].dropna().unique()), key="browse_labels")
    subgroup = f3.selectbox("Subgroup attribute", ["(any)"] + attrs, index=0, key="browse_attr")
    shown = items
    if roles:
        shown = shown[shown["role"].isin(roles)]
    if labels:
        shown = shown[shown["label"].isin(labels)]
    if subgroup != "(any)":
        values = st.multiselect(f"{md(subgroup)} values", sorted(items[subgroup].dropna().astype(str).unique()),
                                key="browse_attr_values")
        if values:
            shown = shown[shown[subgroup].astype(str).isin(values)]
    per_page = 60
    pages = max(1, -(-len(shown) // per_page))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="browse_page")
    st.caption(f"{len(shown):,} items match; pool labels are hidden until reviewed.")
    fields = ("label", "role", *attrs[:1])
    # image_grid's captions are Markdown: escape the fields they are built from.
    image_grid(md_columns(shown.iloc[(page - 1) * per_page: page * per_page], ("id", *fields)), caption_fields=fields)
