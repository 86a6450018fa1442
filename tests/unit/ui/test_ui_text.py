"""Data-derived strings render as their text: Markdown escaping for Streamlit, entities for Plotly."""

from __future__ import annotations

import string

import pandas as pd
import pytest

from adde_core.ui.figures import latent_map_figure
from adde_core.ui.text import md, md_columns, md_table, plotly_text

PAYLOADS = ["![x](http://127.0.0.1:9/t.png)", "[Log in](http://evil.example)", "<img src=x onerror=alert(1)>",
            ":red[alarm]", "$x^2$", "# heading", "**bold** _it_ `code`", "a\nb", "| a | b |", "C:\\data\\x"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_metacharacters_are_escaped_and_nothing_else_changes(payload):
    # CommonMark renders a backslash-escaped ASCII punctuation character as that character, so
    # this output renders as the input's text; the browser test (tests/e2e/test_data_as_text.py)
    # checks it against Streamlit's own renderer.
    out = md(payload)
    unescaped, k = [], 0
    while k < len(out):
        if out[k] == "\\":
            assert out[k + 1] in string.punctuation, out
            unescaped.append(out[k + 1])
            k += 2
        else:
            assert out[k] not in "\\`*_[]<>|~$&@", out
            unescaped.append(out[k])
            k += 1
    assert "".join(unescaped) == " ".join(payload.splitlines())
    assert "http://" not in out and not out.startswith("#")


def test_md_keeps_plain_words_and_our_paragraphs():
    assert md("cat dog 12") == "cat dog 12"
    assert md(None) == ""
    assert md("does-not-exist: not found (row 3).") == "does-not-exist: not found (row 3)."
    assert md("first line\n\n- second\n2. third", keep_lines=True) == "first line\n\n\\- second\n2\\. third"


def test_table_and_caption_helpers_escape_strings_only():
    counts = pd.Series([3, 1], index=["![x](http://h/t.png)", "cat"], name="n")
    table = md_table(counts)
    assert list(table.index) == [md("![x](http://h/t.png)"), "cat"] and list(table) == [3, 1]
    frame = pd.DataFrame({"id": ["a_b"], "label": ["*x*"], "path": ["/p/a_b.png"], "n": [1]})
    out = md_columns(frame, ("id", "label", "missing"))
    assert out.iloc[0].tolist() == ["a\\_b", "\\*x\\*", "/p/a_b.png", 1] and frame.iloc[0, 0] == "a_b"
    assert md_table(frame).columns.tolist() == ["id", "label", "path", "n"]


def test_plotly_text_and_the_map_legend_show_labels_literally():
    assert plotly_text("<a href='http://x'>%{x} & co</a>") == "&lt;a href='http://x'&gt;&#37;{x} &amp; co&lt;/a&gt;"
    frame = pd.DataFrame({"id": ["a<1>", "b"], "x": [0.0, 1], "y": [0.0, 1], "cluster": ["C0", "C1"],
                          "label": ["<b>cat</b>", "dog %{x}"], "role": ["seed", "pool"]})
    fig = latent_map_figure(frame, color_by="label")
    assert sorted(t.name for t in fig.data) == ["&lt;b&gt;cat&lt;/b&gt;", "dog &#37;{x}"]
    assert all("<b>cat" not in t.hovertemplate and "%{x}<br>y" in t.hovertemplate for t in fig.data)
    # Selection reads ids from customdata, which stays raw.
    assert {tuple(row[:2]) for t in fig.data for row in t.customdata} == {("a<1>", "<b>cat</b>"), ("b", "dog %{x}")}
