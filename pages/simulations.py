"""Simulations page: read the reports written by `python -m adde_core simulate` (and the benchmark)."""

from pathlib import Path

import pandas as pd
import streamlit as st

from adde_core.ui.state import current_project, require_shell
from adde_core.ui.text import md

require_shell("pages/simulations.py")
project = current_project()
st.title("Simulations")
st.caption("Headless runs of the loop with the oracle reviewer against baselines. Start one with "
           "`python -m adde_core simulate --data PATH --strategy adde random margin coreset --budget 300 --rounds 10 "
           "--seeds 5 --out simulations/my-run`.")

roots = [project.root / "simulations", Path.cwd() / "simulations", Path.cwd() / "docs"]
reports = sorted({p.parent for root in roots if root.is_dir() for p in root.rglob("summary.csv")},
                 key=lambda p: p.stat().st_mtime, reverse=True)
if not reports:
    st.info("No simulation reports found under " + ", ".join(md(r) for r in roots) + ".")
    st.stop()
chosen = st.selectbox("Report", reports, format_func=lambda p: str(p))
summary = pd.read_csv(chosen / "summary.csv")
text = (chosen / "report.md").read_text() if (chosen / "report.md").exists() else ""
command = next((line.strip("` ") for line in text.splitlines() if "python" in line and "simulate" in line), None)
if command:
    st.code(command, language="bash")
st.subheader("Summary")
st.dataframe(summary, hide_index=True)
st.caption("labels to 95 %: oracle labels the mean learning curve needs to reach 95% of full-data val accuracy "
           "(NaN: never within the budget). AULC: area under the learning curve over the budget. Bias ampl.: "
           "largest |predicted − true class rate| on val.")
plots = [("learning_curves.png", "Learning curves"), ("worst_group_accuracy.png", "Worst-group accuracy"),
         ("bias_amplification.png", "Bias amplification"), ("vendi.png", "Diversity (Vendi)")]
cols = st.columns(2)
for k, (name, title) in enumerate(plots):
    if (chosen / name).exists():
        cols[k % 2].image(str(chosen / name), caption=title)
with st.expander("Full report (report.md)"):
    # As source, not rendered: the report quotes data names and paths, which must not become Markdown.
    st.code(text, language="markdown", wrap_lines=True)
