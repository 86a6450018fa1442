"""Show data-derived strings (labels, ids, names, critiques, file names) as text, never as Markdown or HTML.

Most Streamlit text elements (``st.markdown``, ``st.caption``, ``st.info``,
``st.subheader``, widget and metric labels, ``st.table`` cells, ``st.image``
captions) parse GitHub-flavoured Markdown. A label such as
``![x](http://host/t.png)`` from a manifest would then make every viewer's
browser fetch that URL, and ``[Log in](http://evil)`` would show a spoofed
link. Wrap every data-derived string in :func:`md` before it joins a Markdown
string, or show it with ``st.text`` / ``st.code`` / ``st.dataframe``, which do
not parse it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

# The characters that start Markdown (and Streamlit) syntax anywhere in a line: emphasis,
# code, links and images ("[", "]"), raw HTML and autolinks ("<", ">"), entities ("&"),
# tables ("|"), strikethrough ("~") and math ("$"). A backslash escape is valid before any
# ASCII punctuation in CommonMark, and only these are escaped so that messages stay readable
# ("does-not-exist: not found" stays as it is). "(" and "!" need no escape once "[" is escaped.
_INLINE = re.compile(r"([\\`*_\[\]<>|~$&])")
# GFM turns bare URLs ("http://", "www.") and e-mail addresses into links: break those up too.
_AUTOLINK = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<=\bwww)(\.)|(@)")
# Block syntax only counts at the start of a line: headings, lists, quotes, setext underlines.
_BLOCK_START = re.compile(r"^(\s*)(?:([-+#=>])|(\d+)([.)]))")
_PLOTLY_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "%": "&#37;"}


def md(value: Any, *, keep_lines: bool = False) -> str:
    """``value`` as a Markdown fragment that renders as exactly its text.

    Parameters
    ----------
    value : Any
        A label, id, name, path or message; ``str(value)`` is escaped. None is "".
    keep_lines : bool, default False
        Keep line breaks (a message whose paragraphs are ours, such as an iteration
        sentence); by default they become spaces.

    Returns
    -------
    str
        The text with every character that would start Markdown syntax backslash-escaped
        and, unless ``keep_lines``, line breaks turned into spaces (a one-line data string
        never starts a paragraph of its own).

    Examples
    --------
    >>> print(md("![x](http://h/t.png) *bold*"))
    !\\[x\\](http\\://h/t.png) \\*bold\\*
    """
    if value is None:
        return ""
    lines = str(value).splitlines() if keep_lines else [" ".join(str(value).splitlines())]
    return "\n".join(_escape_line(line) for line in lines)


def _escape_line(line: str) -> str:
    line = _INLINE.sub(r"\\\1", line)
    line = _AUTOLINK.sub(lambda m: "\\" + m.group(0), line)
    return _BLOCK_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                            line)


def md_table(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """A copy of ``frame`` for ``st.table`` with every string cell, index and column label escaped.

    ``st.table`` renders each cell, header and index entry as Markdown; numbers are left as they are.
    """
    def escape(value: Any) -> Any:
        return md(value) if isinstance(value, str) else value

    out = frame.copy()
    out.index = out.index.map(escape)
    if isinstance(out, pd.DataFrame):
        out.columns = out.columns.map(escape)
        return out.apply(lambda column: column.map(escape))
    out.name = escape(out.name)
    return out.map(escape)


def md_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` with the string cells of ``columns`` escaped (e.g. before they become captions)."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = out[column].map(lambda v: md(v) if isinstance(v, str) else v)
    return out


def plotly_text(value: Any) -> str:
    """``value`` for a Plotly label, legend entry or hover text, shown as its text.

    Plotly renders a small HTML subset in text (``<a href>``, ``<b>``, ``<br>``, entities)
    and reads ``%{...}`` in hover templates as a placeholder; writing ``&``, ``<``, ``>``
    and ``%`` as entities makes it show them literally.
    """
    return "".join(_PLOTLY_ENTITIES.get(ch, ch) for ch in str(value))
