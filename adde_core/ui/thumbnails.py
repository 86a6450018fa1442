"""Small PNG thumbnails served as Streamlit static files, and a hover preview of them on the latent map.

Plotly's hover label cannot show images, so the map's hover shows a floating ``<img>``
placed by a few lines of JavaScript that listen to the chart's ``plotly_hover`` events.

Thumbnail names
---------------
An item's thumbnail is ``<slug>-<fnv>.png``: ``slug`` is
:func:`adde_core.store.database.slugify` of the id cut to 60 characters (readable on
disk) and ``fnv`` the 32-bit FNV-1a hash of the id's UTF-8 bytes as 8 hex digits (two
ids with the same slug, e.g. ``cat/a b`` and ``cat/a_b``, still get different files).
The browser computes the same name from ``customdata[0]`` with a JavaScript mirror of
:func:`thumb_name`, so the figure carries no extra column: a name per point would add
about a third to the map's JSON, which is sent on every rerun.

What is served
--------------
Everything under the static folder is public to anyone who can reach the app, so it
holds thumbnails only: ``static/thumbs/<project>/<name>.png``. The bookkeeping (which
fingerprint and size a folder was made for, which project folder owns it) lives in a
private folder next to it, ``.cache/thumbs/`` beside ``static/``, which is not served.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import streamlit as st

from adde_core.embedding.images import to_rgb
from adde_core.store.database import slugify

#: Streamlit serves ``static/`` next to the main script (app.py) under ``/app/static/``
#: when ``server.enableStaticServing`` is on (see ``.streamlit/config.toml``).
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
THUMBS = "thumbs"
#: The private bookkeeping folder, relative to the static folder's parent (``.cache/`` is git-ignored).
STATE = Path(".cache") / "thumbs"
#: Files that older versions wrote into each served thumbnail folder; removed when seen.
LEGACY_FILES = ("manifest.json", "project_root.txt")
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def thumb_name(item_id: str) -> str:
    """File name of an item's thumbnail; ``thumbName`` in :data:`HOVER_JS` computes the same.

    Parameters
    ----------
    item_id
        The item's id, any string.

    Returns
    -------
    str
        ``<slugify(id)[:60]>-<fnv1a32(utf8(id)) as 8 hex digits>.png``.
    """
    h = _FNV_OFFSET
    for byte in item_id.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return f"{slugify(item_id)[:60]}-{h:08x}.png"


def project_thumb_dir(root: Path | str) -> str:
    """Folder name (under ``static/thumbs``) for a project: its folder name plus a hash of its full path."""
    root = str(root)
    return f"{slugify(Path(root).name)[:40]}-{hashlib.sha1(root.encode()).hexdigest()[:10]}"


def write_thumbnails(paths: Iterable[tuple[str, str]], folder: Path | str, *, size: int = 64,
                     fingerprint: str | None = None, workers: int | None = None,
                     state: Path | str | None = None) -> int:
    """Write a PNG thumbnail for each ``(item_id, image_path)`` that ``folder`` lacks.

    A state file records ``fingerprint`` and ``size``: when both match, nothing is read or
    written (no per-file checks); otherwise the folder is listed once and only missing
    thumbnails are made (all of them when ``size`` changed). ``folder`` itself receives
    thumbnails only, so it can be served as it is.

    Parameters
    ----------
    paths
        ``(item_id, image_path)`` pairs; items without an image are simply left out.
    folder
        Where the thumbnails go (created if missing).
    size
        Longest side in pixels; aspect ratio is kept and small images are not enlarged.
    fingerprint
        Any string that changes when the set of items changes; None always lists the folder.
    workers
        Threads for decoding and encoding (PIL releases the GIL while it does); default: CPU count.
    state
        The state file; default ``<folder>.json`` beside ``folder``. Keep it out of any
        served folder.

    Returns
    -------
    int
        Number of thumbnails written. Unreadable images are skipped (the hover shows no image).
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    folder = Path(folder)
    manifest = Path(state) if state is not None else folder.with_name(folder.name + ".json")
    if _up_to_date(manifest, fingerprint, size):
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    same_size = (_read_json(manifest) or {}).get("size") == size
    # One directory listing instead of a stat per item: 10k stats cost more than the listing.
    have = {e.name for e in os.scandir(folder)} if same_size else set()
    names = ((thumb_name(i), p) for i, p in paths if isinstance(p, (str, Path)) and p)
    todo = [(folder / name, Path(p)) for name, p in names if name not in have]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        written = sum(pool.map(lambda job: _thumbnail(job[1], job[0], size), todo))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "size": size}))
    return written


def ensure_thumbnails(project: Any, *, size: int = 64, static_dir: Path | str | None = None) -> str:
    """Make sure every item with an image has a thumbnail under the app's static folder.

    Cheap on reruns: cached per (project folder, item fingerprint, size), and the
    fingerprint (item count and the last ingest and generate runs) costs three small queries.

    Parameters
    ----------
    project
        The open :class:`adde_core.project.Project`.
    size
        Longest side of a thumbnail in pixels.
    static_dir
        The app's static folder; the repository's ``static/`` by default. Only thumbnails
        are written under it; the bookkeeping goes to :data:`STATE` beside it.

    Returns
    -------
    str
        The URL prefix of the project's thumbnails, e.g. ``/app/static/thumbs/demo-1a2b3c4d5e/``.
    """
    store = project.store
    # A bare COUNT (0.2 ms on the 10k demo) rather than store.counts()' GROUP BY (7 ms): this runs on every rerun.
    n_items = store.item_count()
    runs = [store.last_run(kind) for kind in ("ingest", "generate")]  # the runs that add items
    fingerprint = f"{n_items}:" + ":".join(str(r["id"]) if r else "-" for r in runs)
    return _ensure(str(project.root), fingerprint, size, str(static_dir or STATIC_DIR), _project=project)


@st.cache_resource(show_spinner="Making thumbnails…", max_entries=16)
def _ensure(root: str, fingerprint: str, size: int, static_dir: str, *, _project: Any) -> str:
    name = project_thumb_dir(root)
    thumbs = Path(static_dir) / THUMBS
    private = Path(static_dir).parent / STATE
    _prune_orphans(thumbs, private)
    state = private / f"{name}.json"
    if not _up_to_date(state, fingerprint, size):  # skips loading the items (0.3 s at 10k)
        items = _project.items()
        write_thumbnails(zip(items["id"], items["path"]), thumbs / name, size=size, fingerprint=fingerprint,
                         state=state)
    (thumbs / name).mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    (private / f"{name}.owner").write_text(root)  # lets a later run prune this folder once the project is gone
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{'/' + base if base else ''}/app/static/{THUMBS}/{name}/"


def _up_to_date(state: Path, fingerprint: str | None, size: int) -> bool:
    return fingerprint is not None and _read_json(state) == {"fingerprint": fingerprint, "size": size}


def _prune_orphans(thumbs: Path, private: Path) -> None:
    """Delete thumbnail folders of projects whose folder is gone (e.g. test projects in a temp dir).

    Also moves what older versions kept inside the served folders (the owner's absolute
    path, the manifest) out of them, so the static folder serves thumbnails only.
    """
    import shutil

    for legacy in (p for name in LEGACY_FILES for p in thumbs.glob(f"*/{name}")):
        try:
            if legacy.name == "project_root.txt":
                private.mkdir(parents=True, exist_ok=True)
                (private / f"{legacy.parent.name}.owner").write_text(legacy.read_text())
            legacy.unlink()
        except OSError:
            pass
    for owner in private.glob("*.owner"):
        try:
            if not Path(owner.read_text().strip()).exists():
                shutil.rmtree(thumbs / owner.stem, ignore_errors=True)
                (private / f"{owner.stem}.json").unlink(missing_ok=True)
                owner.unlink()
        except OSError:
            pass


def _thumbnail(src: Path, dest: Path, size: int) -> bool:
    """One thumbnail, oriented and converted as :func:`adde_core.embedding.images.load_rgb` does."""
    from PIL import Image, ImageOps

    try:
        with Image.open(src) as opened:
            opened.draft(opened.mode, (size, size))  # JPEG decodes at a reduced scale: much faster for photos
            # Upright as the embedder and the review cards see it (EXIF orientation).
            im = ImageOps.exif_transpose(opened)
            if im.mode not in ("L", "RGB", "RGBA", "LA"):
                alpha = "A" in im.getbands() or "transparency" in im.info
                # to_rgb rescales 16-bit greyscale to 8 bits; a plain convert() would turn it white.
                im = im.convert("RGBA") if alpha else to_rgb(im)
            im.thumbnail((size, size))
            # Written under a temporary name and renamed, so the browser never gets half a file.
            tmp = dest.with_suffix(".tmp")
            im.save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, dest)
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


#: Runs in an iframe of the page (same origin) and works on the parent document. Filled in
#: with ``__PREFIX__`` and ``__SELECTOR__``; kept constant per project so the iframe is not
#: reloaded on reruns.
HOVER_JS = r"""
<script>
(function () {
  const PREFIX = __PREFIX__, SELECTOR = __SELECTOR__, REGION = "region:";
  const doc = window.parent.document;
  function thumbName(id) {  // mirror of adde_core.ui.thumbnails.thumb_name
    let h = 0x811c9dc5;
    for (const b of new TextEncoder().encode(id)) { h = Math.imul(h ^ b, 0x01000193) >>> 0; }
    const slug = id.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "model";
    return slug.slice(0, 60) + "-" + h.toString(16).padStart(8, "0") + ".png";
  }
  window.parent.__addeThumbName = thumbName;  // lets tests check the mirror against Python
  let box = doc.getElementById("adde-hover-thumb");
  if (!box) {
    box = doc.createElement("div");
    box.id = "adde-hover-thumb";
    box.style.cssText = "position:fixed;z-index:100000;pointer-events:none;display:none;background:#fff;" +
      "border:1px solid #ccc;border-radius:6px;padding:4px;box-shadow:0 2px 8px rgba(0,0,0,.25);" +
      "font:12px sans-serif;color:#222;text-align:center;max-width:200px";
    const img = doc.createElement("img");
    img.style.cssText = "display:block;margin:0 auto;min-width:96px;max-width:192px;image-rendering:pixelated";
    const cap = doc.createElement("div");
    cap.style.cssText = "margin-top:3px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis";
    box.append(img, cap);
    doc.body.appendChild(box);
  }
  const img = box.firstChild, cap = box.lastChild;
  img.onload = () => { img.style.display = "block"; };
  img.onerror = () => { img.style.display = "none"; };  // an item without an image: fields only
  function hide() { box.style.display = "none"; }
  function show(ev) {
    const pt = ev && ev.points && ev.points[0], cd = pt && pt.customdata;
    const id = Array.isArray(cd) ? cd[0] : cd;
    if (typeof id !== "string" || id.startsWith(REGION)) { hide(); return; }
    const src = PREFIX + thumbName(id);
    if (img.getAttribute("src") !== src) { img.style.display = "none"; img.setAttribute("src", src); }
    const label = Array.isArray(cd) && cd.length > 1 && cd[1] != null ? String(cd[1]) : "";
    cap.textContent = label ? id + " · " + label : id;
    box.dataset.itemId = id;
    box.style.display = "block";
    const e = ev.event || {}, w = doc.documentElement.clientWidth, hgt = doc.documentElement.clientHeight;
    const x = e.clientX || 0, y = e.clientY || 0;
    // Beside the cursor, on the side away from Plotly's own label, flipped near the edges.
    box.style.left = (x + 230 > w ? x - 220 : x + 16) + "px";
    box.style.top = (y + 230 > hgt ? Math.max(0, y - 230) : y + 16) + "px";
  }
  function attach() {
    doc.querySelectorAll(SELECTOR).forEach((gd) => {
      if (gd.__addeThumbOwner === window || typeof gd.on !== "function") return;
      // A reloaded iframe replaces the previous instance's listeners instead of adding more.
      const old = gd.__addeThumbHandlers;
      if (old && gd.removeListener) { gd.removeListener("plotly_hover", old[0]); gd.removeListener("plotly_unhover", old[1]); }
      gd.on("plotly_hover", show);
      gd.on("plotly_unhover", hide);
      gd.__addeThumbHandlers = [show, hide];
      gd.__addeThumbOwner = window;
      gd.setAttribute("data-adde-thumbs", "1");
    });
  }
  attach();
  setInterval(attach, 500);  // the chart may appear (or be re-created) after this frame loads
})();
</script>
"""


def hover_thumbnails(url_prefix: str, *, key: str = "explore_map") -> None:
    """Show an item's thumbnail and id · label beside the cursor while hovering a latent-map point.

    Call right after ``st.plotly_chart(..., key=key)`` with the prefix from
    :func:`ensure_thumbnails`. Points whose ``customdata[0]`` is a ``"region:"`` id get none.

    Parameters
    ----------
    url_prefix
        URL of the project's thumbnail folder, ending in ``/``.
    key
        The chart's widget key; Streamlit marks its container with the ``st-key-<key>`` class.
    """
    html = (HOVER_JS.replace("__PREFIX__", json.dumps(url_prefix))
            .replace("__SELECTOR__", json.dumps(f".st-key-{key} .js-plotly-plot")))
    # st.iframe is the non-deprecated successor of components.v1.html; its srcdoc frame
    # is same-origin, so the script can reach the chart in the parent document.
    st.iframe(html, height=1)
