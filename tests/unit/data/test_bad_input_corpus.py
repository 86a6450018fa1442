"""The bad-input corpus: every kind of bad input ADDE checks, each run through a real ingest.

For every kind: no exception escapes (a file that cannot be read at all is one
IngestError naming it), the good rows load, every bad row is in the report with file,
row, field and reason, the report holds nothing unexpected, and the loaded items'
stored values equal the input. ``docs/bad_input.md`` is the table of these kinds.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adde_core.data.report import IngestReport
from adde_core.errors import IngestError
from adde_core.project import Project

HEADER = "path,label,role\n"
GOOD_ROWS = "cat/a.png,cat,seed\ndog/b.png,dog,seed\n"
GOOD = {"cat/a": {"label": "cat"}, "dog/b": {"label": "dog"}}
MANIFEST = "manifest.csv"


@dataclass
class Bad:
    """A report entry the case must produce."""

    row: int | None
    field: str | None
    reason: str  # a fragment of the reason
    file: str | None = None  # a fragment of the file; default: the ingested file's name
    severity: str = "error"


@dataclass
class Case:
    """One kind of bad input.

    ``manifest`` is CSV text or bytes written to ``data/manifest.csv``, or a function of
    the data folder that writes the input and returns its path. ``good`` maps each item
    id that must load to the values it must be stored with (label, role, oracle_label,
    source, attrs, vector); ``raises`` is a fragment of the IngestError expected instead.
    """

    kind: str
    manifest: str | bytes | Callable[[Path], Path] | None = None
    bad: list[Bad] = field(default_factory=list)
    good: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(GOOD))
    images: tuple[str, ...] = ("cat/a.png", "dog/b.png")
    setup: Callable[[Path], None] | None = None
    folder: bool = False  # ingest data/ as an image folder instead of a manifest
    kwargs: Callable[[Path], dict[str, Any]] | dict[str, Any] = field(default_factory=dict)
    before: str | None = None  # a manifest ingested first (its items count as good too)
    before_vectors: np.ndarray | None = None  # .npy ingested with ``before`` as the set "precomputed:emb"
    raises: str | None = None
    skip: str | None = None


def _png(path: Path, k: int, size: tuple[int, int] = (4, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", size, color=(37 * k) % 256)
    im.putpixel((0, 0), k % 256)  # distinct bytes per image, so no "same image bytes" warnings
    im.save(path)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def _big_png(path: Path, width: int, height: int) -> None:
    """A real, valid 1-bit PNG of width × height pixels, written without holding it in memory as pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height, 9))
                     + chunk(b"IEND", b""))


def _parquet(frame: pd.DataFrame, name: str = "manifest.parquet") -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        frame.to_parquet(d / name, index=False)
        return d / name
    return write


def _csv_with(rows: str, header: str = HEADER) -> str:
    return header + GOOD_ROWS + rows


def _symlink(src: str, target: str | Path) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / src).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, d / src)
    return make


def _files(content: dict[str, str | bytes]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        for rel, data in content.items():
            _write(d / rel, data)
    return make


def _outside(d: Path) -> None:
    _png(d.parent / "outside.png", 200)


def _emb(matrix: np.ndarray, name: str = "emb.npy") -> Callable[[Path], dict[str, Any]]:
    def kwargs(d: Path) -> dict[str, Any]:
        np.save(d / name, matrix, allow_pickle=matrix.dtype == object)
        return {"embeddings": d / name}
    return kwargs


def _emb_parquet(frame: pd.DataFrame) -> Callable[[Path], dict[str, Any]]:
    def kwargs(d: Path) -> dict[str, Any]:
        frame.to_parquet(d / "vec.parquet", index=False)
        return {"embeddings": d / "vec.parquet"}
    return kwargs


def _emb_raw(name: str, data: bytes) -> Callable[[Path], dict[str, Any]]:
    def kwargs(d: Path) -> dict[str, Any]:
        _write(d / name, data)
        return {"embeddings": d / name}
    return kwargs


RNG = np.random.default_rng(0)
V3 = RNG.normal(size=(3, 4))
def _truncated_png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


TRUNCATED = _truncated_png()
NPY_ROWS = "id,label,role\ne0,cat,seed\ne1,dog,seed\ne2,cat,seed\n"
VEC_GOOD = {"e0": {"label": "cat", "vector": V3[0]}, "e1": {"label": "dog", "vector": V3[1]},
            "e2": {"label": "cat", "vector": V3[2]}}
NOVEC = {"e0": {"label": "cat"}, "e1": {"label": "dog"}, "e2": {"label": "cat"}}
IMG_ROWS = "id,path,label,role\ne0,cat/a.png,cat,seed\ne1,dog/b.png,dog,seed\ne2,cat/c.png,cat,seed\n"
IMG3 = ("cat/a.png", "dog/b.png", "cat/c.png")


def _no_vectors(rows: int) -> list[Bad]:
    return [Bad(r, "path", "no image path and no embedding") for r in range(1, rows + 1)]


CASES = [
    # ---------------------------------------------------------------- images listed in a manifest
    Case("truncated image", _csv_with("cat/x.png,cat,seed\n"), [Bad(3, "path", "corrupt image", "cat/x.png")],
         setup=_files({"cat/x.png": TRUNCATED})),
    Case("zero-byte image", _csv_with("cat/x.png,cat,seed\n"), [Bad(3, "path", "zero-byte file", "cat/x.png")],
         setup=_files({"cat/x.png": b""})),
    Case("text file named .png", _csv_with("cat/x.png,cat,seed\n"), [Bad(3, "path", "not an image", "x.png")],
         setup=_files({"cat/x.png": "hello\n"})),
    Case("unsupported extension", _csv_with("cat/x.txt,cat,seed\n"),
         [Bad(3, "path", "unsupported extension '.txt'", "x.txt")], setup=_files({"cat/x.txt": "a caption"})),
    Case("missing image file", _csv_with("cat/missing.png,cat,seed\n"), [Bad(3, "path", "file not found")]),
    Case("path is a folder", _csv_with("cat,cat,seed\n"), [Bad(3, "path", "not a regular file")]),
    Case("path escapes with ../", _csv_with("../outside.png,cat,seed\n"), [Bad(3, "path", "escapes the data root")],
         setup=_outside),
    Case("absolute path outside the root",
         lambda d: _write(d / MANIFEST, _csv_with(f"{d.parent / 'outside.png'},cat,seed\n")),
         [Bad(3, "path", "escapes the data root")], setup=_outside),
    Case("symlink in the data root to a file outside", _csv_with("cat/link.png,cat,seed\n"),
         [Bad(3, "path", "through a symbolic link to")],
         setup=lambda d: (_outside(d), _symlink("cat/link.png", d.parent / "outside.png")(d))),
    Case("symlink loop", _csv_with("cat/loop.png,cat,seed\n"), [Bad(3, "path", "symbolic link loop")],
         setup=_symlink("cat/loop.png", "loop.png")),
    Case("5,000-character path", _csv_with("x" * 5000 + ".png,cat,seed\n"),
         [Bad(3, "path", "path is 5,004 characters long")]),
    Case("file name over 255 bytes", _csv_with("cat/" + "é" * 200 + ".png,cat,seed\n"),
         [Bad(3, "path", "file or folder name of 404 bytes")]),
    Case("NUL byte in a path", _csv_with("cat/a\x00.png,cat,seed\n").encode(),
         [Bad(3, "path", "path contains a NUL character")]),
    Case("line break in a path", _csv_with('"cat/a\n.png",cat,seed\n'),
         [Bad(3, "path", "control character U+000A")]),
    Case("URL instead of a path", _csv_with("https://example.com/a.png,cat,seed\n"), [Bad(3, "path", "is a URL")]),
    Case("Windows backslashes in a path", _csv_with("cat\\c.png,cat,seed\n"),
         [Bad(3, "path", "separate folders with '/'")], images=("cat/a.png", "dog/b.png", "cat/c.png")),
    Case("empty path", _csv_with(",cat,seed\n"), [Bad(3, "path", "empty path")]),
    Case("whitespace-only path", _csv_with("   ,cat,seed\n"), [Bad(3, "path", "empty path")]),
    Case("path is the data root itself", _csv_with(".,cat,seed\n"), [Bad(3, "path", "data root itself")]),
    Case("100-megapixel image (decompression bomb)", _csv_with("cat/huge.png,cat,seed\n"),
         [Bad(3, "path", "above the 89.5-megapixel limit", "huge.png")],
         setup=lambda d: _big_png(d / "cat" / "huge.png", 10_000, 10_000)),
    Case("unreadable image file", _csv_with("cat/c.png,cat,seed\n"), [Bad(3, "path", "cannot be read", "c.png")],
         images=IMG3, setup=lambda d: (d / "cat" / "c.png").chmod(0),
         skip="root reads any file" if os.geteuid() == 0 else None),
    Case("byte-identical image under two ids", "id,path,label,role\ns1,cat/a.png,cat,seed\ns2,cat/a.png,cat,seed\n",
         [Bad(2, "path", "same image bytes as item 's1'", severity="warning")],
         good={"s1": {"label": "cat"}, "s2": {"label": "cat"}}),
    # ---------------------------------------------------------------- image folders
    Case("file directly in the folder root", folder=True, images=("cat/a.png", "dog/b.png", "loose.png"),
         bad=[Bad(None, None, "not inside a class sub-folder", "loose.png")]),
    Case("symlink in an image folder to a file outside", folder=True,
         bad=[Bad(None, "path", "outside the folder", "cat/link.png")],
         setup=lambda d: (_outside(d), _symlink("cat/link.png", d.parent / "outside.png")(d))),
    Case("broken symlink in an image folder", folder=True, bad=[Bad(None, "path", "broken symbolic link", "gone.png")],
         setup=_symlink("cat/gone.png", "nowhere.png")),
    Case("symlink to a folder", folder=True, bad=[Bad(None, None, "symbolic link to a folder", "cow")],
         setup=lambda d: os.symlink(d / "cat", d / "cow")),
    Case("hidden image file", folder=True, bad=[Bad(None, None, "hidden file", ".c.png")],
         images=("cat/a.png", "dog/b.png", "cat/.c.png")),
    Case("hidden folder of images", folder=True, bad=[Bad(None, None, "hidden folder", ".trash")],
         images=("cat/a.png", "dog/b.png", ".trash/cat/c.png")),
    Case("junk dot-files are skipped quietly", folder=True,
         setup=_files({".DS_Store": b"\0\0", "cat/.DS_Store": b"\0"})),
    Case("file name that is not UTF-8", folder=True, bad=[Bad(None, "path", "not valid UTF-8 text (byte 0xE9)")],
         setup=lambda d: _png(Path(os.fsdecode(os.fsencode(d / "cat") + b"/caf\xe9.png")), 9)),
    Case("two files with the same id in a folder", folder=True, images=("cat/a.png", "dog/b.png", "cat/a.jpg"),
         bad=[Bad(None, "id", "duplicate id 'cat/a': same as", "cat/a.png")],
         good={"cat/a": {"label": "cat", "path_suffix": ".jpg"}, "dog/b": {"label": "dog"}}),
    Case("corrupt image in a folder", folder=True, bad=[Bad(None, "path", "corrupt image", "cat/x.png")],
         setup=_files({"cat/x.png": TRUNCATED})),
    Case("empty folder", folder=True, images=(), good={}, bad=[Bad(None, None, "no files found", severity="warning")]),
    Case("nested sub-folders take the first level as label", folder=True,
         images=("cat/a.png", "dog/b.png", "cat/indoor/c.png"),
         good={**GOOD, "cat/indoor/c": {"label": "cat"}}),
    Case("id over 255 characters from a deep folder", folder=True,
         images=("cat/a.png", "dog/b.png", "cat/" + "d" * 200 + "/" + "e" * 100 + ".png"),
         bad=[Bad(None, "id", "is 305 characters long; at most 255")]),
    # ---------------------------------------------------------------- CSV encoding and structure
    Case("UTF-8 byte-order mark", b"\xef\xbb\xbf" + (HEADER + GOOD_ROWS).encode()),
    Case("UTF-16 with a byte-order mark (Excel 'Unicode text')", (HEADER + GOOD_ROWS).encode("utf-16")),
    Case("one byte that is not UTF-8 in one row", (HEADER + GOOD_ROWS).encode() + b"cat/c.png,caf\xe9,seed\n",
         [Bad(3, "label", "not valid UTF-8 text (byte 0xE9)")], images=IMG3),
    Case("one-column CSV (no delimiter to sniff)", "path\ncat/tabby.png\ndog/terrier.png\n",
         images=("cat/tabby.png", "dog/terrier.png"), kwargs={"default_role": "pool"},
         good={"cat/tabby": {"role": "pool"}, "dog/terrier": {"role": "pool"}}),
    Case("semicolon-delimited CSV", "path;label;role\ncat/a.png;cat;seed\ndog/b.png;dog;seed\n"),
    Case("tab-delimited file named .csv", "path\tlabel\trole\ncat/a.png\tcat\tseed\ndog/b.png\tdog\tseed\n"),
    Case("TSV file", lambda d: _write(d / "m.tsv", "path\tlabel\trole\ncat/a.png\tcat\tseed\ndog/b.png\tdog\tseed\n")),
    Case("Windows line endings", (HEADER + GOOD_ROWS).replace("\n", "\r\n")),
    Case("blank lines between rows", HEADER + "\ncat/a.png,cat,seed\n\n\ndog/b.png,dog,seed\n\n"),
    Case("row with too many values", _csv_with("cat/c,1.png,cat,seed\n"),
         [Bad(3, None, "has 4 values but the header has 3")],
         images=IMG3),
    Case("row with too few values", _csv_with("cat/c.png,cat\n"),
         [Bad(3, None, "the missing ones ('role') are read as empty", severity="warning")], images=IMG3,
         good={**GOOD, "cat/c": {"label": "cat"}}),
    Case("trailing delimiter at the end of rows", HEADER + "cat/a.png,cat,seed,\ndog/b.png,dog,seed,,\n"),
    Case("unclosed quote", HEADER + 'cat/a.png,cat,seed\n"cat/c.png,cat,seed\ndog/b.png,dog,seed\n',
         [Bad(2, None, "malformed CSV on line 3")], images=IMG3),
    Case("text after a closing quote", HEADER + 'cat/a.png,cat,seed\n"cat/c.png"x,cat,seed\ndog/b.png,dog,seed\n',
         [Bad(2, None, "malformed CSV on line 3")], images=IMG3),
    Case("empty file", "", raises="is empty", good={}),
    Case("header but no rows", HEADER, [Bad(None, None, "no rows", severity="warning")], good={}),
    Case("Excel workbook renamed .csv", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, raises="ZIP archive", good={}),
    Case("binary file renamed .csv", bytes(range(256)) * 4, raises="binary file", good={}),
    Case("manifest with an unsupported extension", lambda d: _write(d / "m.json", "{}"),
         raises="must be .csv or .parquet", good={}),
    Case("manifest file missing", lambda d: d / "nope.csv", raises="manifest not found", good={}),
    Case("manifest path with a NUL byte", lambda d: d / "m\x00.csv", raises="path contains a NUL character", good={}),
    Case("manifest path of 5,000 characters", lambda d: d / ("m" * 5000 + ".csv"), raises="File name too long",
         good={}),
    Case("manifest path is a folder", lambda d: d / "cat", raises="is a folder, not a file", good={}),
    Case("data root that does not exist", HEADER + GOOD_ROWS, kwargs=lambda d: {"data_root": d / "nope"},
         raises="data root", good={}),
    Case("image folder that does not exist", folder=True, manifest=lambda d: d / "nope", raises="not found", good={}),
    Case("image folder that is a file", folder=True, manifest=lambda d: d / "cat" / "a.png", raises="not a folder",
         good={}),
    Case("no path column", "label,role\ncat,seed\n", raises="no 'path' column (columns are: label, role)", good={}),
    Case("file named .parquet that is not Parquet", lambda d: _write(d / "m.parquet", b"not parquet"),
         raises="cannot be read as a table", good={}),
    # ---------------------------------------------------------------- columns
    Case("a second label column that disagrees", "path,label,role,label\ncat/a.png,cat,seed,cat\n"
         "dog/b.png,dog,seed,dog\ncat/c.png,cat,seed,dog\n",
         [Bad(None, "label", "columns 2, 4 are all named 'label'", severity="warning"),
          Bad(3, "label", "the 2 'label' columns disagree: 'cat' (column 2), 'dog' (column 4)")], images=IMG3),
    Case("a repeated attribute column", "path,label,role,pose,pose\ncat/a.png,cat,seed,up,up\n"
         "dog/b.png,dog,seed,side,\n",
         [Bad(None, "pose", "all named 'pose'", severity="warning"), Bad(2, "pose", "columns disagree")],
         good={"cat/a": {"label": "cat", "attrs": {"pose": "up"}}}),
    Case("spaces around column names", " path , label ,role\ncat/a.png,cat,seed\ndog/b.png,dog,seed\n"),
    Case("column name in the wrong case", "path,Label\ncat/a.png,cat\ndog/b.png,dog\n",
         [Bad(None, "Label", "not as 'label': column names are case-sensitive", severity="warning")],
         kwargs={"default_role": "pool"},
         good={"cat/a": {"role": "pool", "attrs": {"Label": "cat"}},
               "dog/b": {"role": "pool", "attrs": {"Label": "dog"}}}),
    Case("column without a name", "path,label,role,\ncat/a.png,cat,seed,x\ndog/b.png,dog,seed,\n",
         [Bad(None, None, "column 4 has no name", severity="warning")]),
    Case("column named like an internal field", "path,label,role,uri\ncat/a.png,cat,seed,s3://x\ndog/b.png,dog,seed,y\n",
         [Bad(None, "uri", "name ADDE uses for its own data", severity="warning")]),
    Case("NUL in a column name", b"path,label,role,po\x00se\ncat/a.png,cat,seed,up\ndog/b.png,dog,seed,up\n",
         [Bad(None, "po\\x00se", "contains a NUL character: the column was not loaded", severity="warning")]),
    # ---------------------------------------------------------------- values
    Case("text that pandas would read as missing (NA, null, None)", "path,label,role,region\ncat/a.png,NA,seed,None\n"
         "dog/b.png,null,seed,NaN\n",
         good={"cat/a": {"label": "NA", "attrs": {"region": "None"}},
               "dog/b": {"label": "null", "attrs": {"region": "NaN"}}}),
    Case("numbers with leading zeros stay text", "id,path,label,role,batch\n007,cat/a.png,cat,seed,0.50\n"
         "08,dog/b.png,dog,seed,1e3\n",
         good={"007": {"label": "cat", "attrs": {"batch": "0.50"}}, "08": {"label": "dog", "attrs": {"batch": "1e3"}}}),
    Case("spaces around a label", HEADER + "cat/a.png,cat ,seed\ndog/b.png,dog,seed\n",
         [Bad(1, "label", "has spaces around it: stored as 'cat'", severity="warning")]),
    Case("spaces after the delimiter", "path, label, role\ncat/a.png, cat, seed\ndog/b.png, dog, seed\n"),
    Case("NUL in a label", _csv_with("cat/c.png,c\x00at,seed\n").encode(),
         [Bad(3, "label", "contains a NUL character")], images=IMG3),
    Case("NUL in an id", "id,path,label,role\na\x00,cat/a.png,cat,seed\nb,dog/b.png,dog,seed\n",
         [Bad(1, "id", "contains a NUL character")], good={"b": {"label": "dog"}}),
    Case("id over 255 characters", "id,path,label,role\n" + "i" * 300 + ",cat/a.png,cat,seed\nb,dog/b.png,dog,seed\n",
         [Bad(1, "id", "is 300 characters long; at most 255")], good={"b": {"label": "dog"}}),
    Case("label over 255 characters", _csv_with("cat/c.png," + "l" * 256 + ",seed\n"),
         [Bad(3, "label", "is 256 characters long")], images=IMG3),
    Case("oracle_label over 255 characters", "path,label,role,oracle_label\ncat/a.png,cat,seed,\n"
         "dog/b.png,dog,seed,\ncat/c.png,,pool," + "o" * 300 + "\n",
         [Bad(3, "oracle_label", "is 300 characters long")], images=IMG3),
    Case("tab inside a quoted label", _csv_with('cat/c.png,"c\tat",seed\n'),
         [Bad(3, "label", "control character U+0009")], images=IMG3),
    Case("NUL in an attribute value", b"path,label,role,pose\ncat/a.png,cat,seed,up\ndog/b.png,dog,seed,si\x00de\n",
         [Bad(2, "pose", "contains a NUL character")], good={"cat/a": {"label": "cat", "attrs": {"pose": "up"}}}),
    Case("long attribute text is kept whole", "path,label,role,note\ncat/a.png,cat,seed," + "n" * 1000 + "\n"
         "dog/b.png,dog,seed,\n",
         good={"cat/a": {"label": "cat", "attrs": {"note": "n" * 1000}}, "dog/b": {"label": "dog"}}),
    Case("duplicate id in a manifest", "id,path,label,role\ns1,cat/a.png,cat,seed\ns1,dog/b.png,dog,seed\n",
         [Bad(2, "id", "duplicate id 's1': same as row 1")], good={"s1": {"label": "cat"}}),
    Case("same path twice without ids", _csv_with("cat/a.png,cat,seed\n"), [Bad(3, "id", "duplicate id 'cat/a'")]),
    Case("id already in the project", "id,path,label,role\nold,cat/a.png,cat,seed\nnew,dog/b.png,dog,seed\n",
         [Bad(1, "id", "already in the project")], before="id,path,label,role\nold,cat/c.png,cat,seed\n",
         images=IMG3, good={"old": {"label": "cat"}, "new": {"label": "dog"}}),
    Case("unknown role", _csv_with("cat/c.png,cat,trian\n"), [Bad(3, "role", "unknown role 'trian'")], images=IMG3),
    Case("role=candidate", _csv_with("cat/c.png,cat,candidate\n"),
         [Bad(3, "role", "unknown role 'candidate' (expected one of seed, pool, val, ood)")], images=IMG3),
    Case("role in the wrong case", _csv_with("cat/c.png,cat,Seed\n"), [Bad(3, "role", "did you mean 'seed'?")],
         images=IMG3),
    Case("unknown source", "path,label,role,source\ncat/a.png,cat,seed,real\ndog/b.png,dog,seed,scraped\n",
         [Bad(2, "source", "unknown source 'scraped'")], good={"cat/a": {"label": "cat"}}),
    Case("seed row without a label", _csv_with("cat/c.png,,seed\n"), [Bad(3, "label", "seed item has no label")],
         images=IMG3),
    Case("val label absent from the seed", _csv_with("cat/c.png,zebra,val\n"),
         [Bad(3, "label", "'zebra' in val does not occur in the seed set")], images=IMG3),
    Case("labelled pool rows", _csv_with("cat/c.png,cat,pool\n"),
         [Bad(None, "label", "1 pool rows have a label", severity="warning")], images=IMG3,
         good={**GOOD, "cat/c": {"role": "pool", "label": None, "oracle_label": "cat", "source": "pool"}}),
    Case("pool row whose label and oracle_label differ", "path,label,role,oracle_label\ncat/a.png,cat,seed,\n"
         "dog/b.png,dog,seed,\ncat/c.png,cat,pool,dog\n",
         [Bad(3, "label", "the label was dropped and the oracle_label kept", severity="warning")], images=IMG3,
         good={**GOOD, "cat/c": {"role": "pool", "label": None, "oracle_label": "dog"}}),
    Case("labels that differ only in case", _csv_with("cat/c.png,Cat,seed\n"),
         [Bad(3, "label", "differs from label 'cat' (row 1) only in letter case:", severity="warning")], images=IMG3,
         good={**GOOD, "cat/c": {"label": "Cat"}}),
    Case("labels that differ only in Unicode form", "path,label,role\ncat/a.png,caf\u00e9,seed\n"
         "dog/b.png,cafe\u0301,seed\n",
         [Bad(2, "label", "only in Unicode form (code points U+0063 U+0061 U+0066 U+0065 U+0301 vs",
              severity="warning")],
         good={"cat/a": {"label": "caf\u00e9"}, "dog/b": {"label": "cafe\u0301"}}),
    Case("unknown default role", HEADER + GOOD_ROWS, kwargs={"default_role": "train"}, raises="unknown role 'train'",
         good={}),
    # ---------------------------------------------------------------- Parquet manifests
    Case("Parquet list column", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"],
                                                       "tags": [["x"], ["y", "z"]]})),
         [Bad(None, "tags", "holds lists (first in row 1, 2 rows in all)", "manifest.parquet", "warning")]),
    Case("Parquet datetime column", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"],
                                                           "taken": pd.to_datetime(["2024-01-02 03:04:05", None])})),
         [Bad(None, "taken", "holds dates/times: stored as text", "manifest.parquet", "warning")],
         good={"cat/a": {"label": "cat", "attrs": {"taken": "2024-01-02T03:04:05"}}, "dog/b": {"label": "dog"}}),
    Case("Parquet struct column", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"],
                                                         "meta": [{"k": 1}, {"k": 2}]})),
         [Bad(None, "meta", "holds maps", "manifest.parquet", "warning")]),
    Case("Parquet binary column", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"],
                                                         "thumb": [b"\x89P", b"\x00"]})),
         [Bad(None, "thumb", "holds binary data", "manifest.parquet", "warning")]),
    Case("Parquet decimal column", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"],
                                                          "price": [__import__("decimal").Decimal("1.10"), None]})),
         [Bad(None, "price", "holds decimal numbers: stored as text", "manifest.parquet", "warning")],
         good={"cat/a": {"label": "cat", "attrs": {"price": "1.10"}}, "dog/b": {"label": "dog"}}),
    Case("Parquet infinite attribute", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png"],
                                                              "label": ["cat", "dog"], "score": [0.5, float("inf")]})),
         [Bad(2, "score", "score is inf, not a finite number", "manifest.parquet")],
         good={"cat/a": {"label": "cat", "attrs": {"score": 0.5}}}),
    Case("Parquet typed attributes keep their types", _parquet(pd.DataFrame({
        "path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"], "n": pd.array([3, None], dtype="Int64"),
        "ok": [True, False], "w": [0.25, float("nan")], "grp": pd.Categorical(["u", "v"])})),
         good={"cat/a": {"label": "cat", "attrs": {"n": 3, "ok": True, "w": 0.25, "grp": "u"}},
               "dog/b": {"label": "dog", "attrs": {"ok": False, "grp": "v"}}}),
    Case("Parquet list-valued label", _parquet(pd.DataFrame({"path": ["cat/a.png", "dog/b.png", "cat/c.png"],
                                                             "label": [["cat"], ["dog"], ["cat"]]})),
         [Bad(r, "label", "label holds lists, not text", "manifest.parquet") for r in (1, 2, 3)], images=IMG3, good={}),
    Case("Parquet integer labels and ids", _parquet(pd.DataFrame({"id": [10, 11], "path": ["cat/a.png", "dog/b.png"],
                                                                  "label": [1, 2]})),
         good={"10": {"label": "1"}, "11": {"label": "2"}}),
    Case("Parquet written with its pandas index", lambda d: (pd.DataFrame(
        {"path": ["cat/a.png", "dog/b.png"], "label": ["cat", "dog"]}, index=[5, 6]).to_parquet(d / "m.parquet"),
        d / "m.parquet")[1]),
    # ---------------------------------------------------------------- precomputed embeddings
    Case("duplicate id with a .npy: the kept row keeps its own vector",
         "id,label,role\ne0,cat,seed\ne0,dog,seed\ne2,cat,seed\n", [Bad(2, "id", "duplicate id 'e0': same as row 1")],
         kwargs=_emb(V3), good={"e0": VEC_GOOD["e0"], "e2": VEC_GOOD["e2"]}),
    Case("escaping path with a .npy: vectors stay aligned to manifest rows",
         "id,path,label,role\ne0,cat/a.png,cat,seed\ne1,../outside.png,dog,seed\ne2,cat/c.png,cat,seed\n",
         [Bad(2, "path", "escapes the data root")], setup=_outside, images=IMG3, kwargs=_emb(V3),
         good={"e0": VEC_GOOD["e0"], "e2": VEC_GOOD["e2"]}),
    Case("bad rows anywhere with a .npy: the others keep their vectors",
         "id,label,role\ne0,cat,trian\ne1,dog,seed\ne2,,seed\n",
         [Bad(1, "role", "unknown role"), Bad(3, "label", "no label")], kwargs=_emb(V3), good={"e1": VEC_GOOD["e1"]}),
    Case("complex vectors", NPY_ROWS, [Bad(None, None, "holds complex numbers", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(V3 + 1j), good={}),
    Case("NaN and inf in vectors", NPY_ROWS,
         [Bad(1, "embedding", "contains NaN or inf", "emb.npy"), Bad(3, "embedding", "contains NaN or inf", "emb.npy")],
         kwargs=_emb(np.where([[True], [False], [True]], np.array([np.nan, 1, np.inf, 0]), V3)),
         good={"e1": VEC_GOOD["e1"]}),
    Case("vector values beyond float32", NPY_ROWS, [Bad(2, "embedding", "beyond the float32 range", "emb.npy")],
         kwargs=_emb(np.vstack([V3[0], V3[1] * 1e300, V3[2]])), good={"e0": VEC_GOOD["e0"], "e2": VEC_GOOD["e2"]}),
    Case("integer vectors", NPY_ROWS, kwargs=_emb(np.arange(12).reshape(3, 4)),
         good={f"e{i}": {"label": ["cat", "dog", "cat"][i], "vector": np.arange(12).reshape(3, 4)[i]}
               for i in range(3)}),
    Case(".npy with fewer rows than the manifest", NPY_ROWS,
         [Bad(None, None, "row count mismatch: 2 embedding rows for 3 manifest rows", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(V3[:2]), good={}),
    Case(".npy that is 1-D", NPY_ROWS, [Bad(None, None, "wrong dimensions", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(V3[0]), good={}),
    Case(".npy that is 3-D", NPY_ROWS, [Bad(None, None, "got shape (3, 2, 2)", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(V3.reshape(3, 2, 2)), good={}),
    Case(".npy with zero columns", NPY_ROWS, [Bad(None, None, "got shape (3, 0)", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(np.zeros((3, 0))), good={}),
    Case(".npy of objects (a pickle) is never unpickled", NPY_ROWS,
         [Bad(None, None, "cannot be read as a numeric matrix", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(np.array([{"a": 1}] * 3, dtype=object)), good={}),
    Case(".npy of booleans", NPY_ROWS, [Bad(None, None, "not numeric (dtype bool)", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(np.ones((3, 4), dtype=bool)), good={}),
    Case(".npy of strings", NPY_ROWS, [Bad(None, None, "not numeric (dtype <U1)", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb(np.full((3, 4), "x")), good={}),
    Case("truncated .npy", NPY_ROWS, [Bad(None, None, "cannot be read", "emb.npy"), *_no_vectors(3)],
         kwargs=_emb_raw("emb.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }"
                         + b" " * 49 + b"\n" + b"\x00" * 16), good={}),
    Case(".npz instead of .npy", NPY_ROWS, [Bad(None, None, "must be .npy or .parquet, not '.npz'", "emb.npz"),
                                            *_no_vectors(3)],
         kwargs=_emb_raw("emb.npz", b"PK"), good={}),
    Case("embeddings file missing", NPY_ROWS,
         [Bad(None, None, "embeddings file not found", "nope.npy"), *_no_vectors(3)],
         kwargs=lambda d: {"embeddings": d / "nope.npy"}, good={}),
    Case(".npy with a manifest whose quoting is broken", 'id,label,role\ne0,cat,seed\n"e1"x,dog,seed\ne2,cat,seed\n',
         [Bad(2, None, "malformed CSV"), Bad(None, None, "cannot be matched to .npy rows reliably", "emb.npy"),
          Bad(1, "path", "no image path"), Bad(3, "path", "no image path")], kwargs=_emb(V3), good={}),
    Case("vectors alongside images: a bad vector rejects its row", IMG_ROWS,
         [Bad(2, "embedding", "contains NaN", "emb.npy")], images=IMG3,
         kwargs=_emb(np.vstack([V3[0], np.full(4, np.nan), V3[2]])), good={"e0": VEC_GOOD["e0"], "e2": VEC_GOOD["e2"]}),
    Case("embeddings Parquet without an id column", NPY_ROWS,
         [Bad(None, "id", "no 'id' column", "vec.parquet"), *_no_vectors(3)],
         kwargs=_emb_parquet(pd.DataFrame({"embedding": list(V3)})), good={}),
    Case("embeddings Parquet with ragged vectors", NPY_ROWS,
         [Bad(2, "embedding", "has 3 values but most rows have 4", "vec.parquet"), Bad(2, "path", "no image path")],
         kwargs=_emb_parquet(pd.DataFrame({"id": ["e0", "e1", "e2"], "embedding": [V3[0], V3[1][:3], V3[2]]})),
         good={"e0": VEC_GOOD["e0"], "e2": VEC_GOOD["e2"]}),
    Case("embeddings Parquet with a missing vector", NPY_ROWS,
         [Bad(3, "embedding", "no embedding", "vec.parquet"), Bad(3, "path", "no image path")],
         kwargs=_emb_parquet(pd.DataFrame({"id": ["e0", "e1", "e2"], "embedding": [V3[0], V3[1], None]})),
         good={"e0": VEC_GOOD["e0"], "e1": VEC_GOOD["e1"]}),
    Case("embeddings Parquet with ids in another order, a duplicate, an unknown and a missing id", NPY_ROWS,
         [Bad(4, "id", "duplicate id 'e0'; the first row is used", "vec.parquet", "warning"),
          Bad(5, "id", "'zz' is not in the manifest", "vec.parquet", "warning"),
          Bad(6, "id", "no id", "vec.parquet", "warning")],
         kwargs=_emb_parquet(pd.DataFrame({"id": ["e2", "e1", "e0", "e0", "zz", None],
                                           "embedding": [V3[2], V3[1], V3[0], V3[1], V3[1], V3[1]]})),
         good=VEC_GOOD),
    Case("embeddings Parquet with one column per dimension", NPY_ROWS,
         kwargs=_emb_parquet(pd.DataFrame({"id": ["e0", "e1", "e2"], **{f"d{j}": V3[:, j] for j in range(4)}})),
         good=VEC_GOOD),
    Case("embeddings Parquet with a text dimension column", NPY_ROWS,
         [Bad(None, "d1", "column 'd1' is not numeric", "vec.parquet"), *_no_vectors(3)],
         kwargs=_emb_parquet(pd.DataFrame({"id": ["e0", "e1", "e2"], "d0": [1.0, 2.0, 3.0], "d1": ["a", "b", "c"]})),
         good={}),
    Case("vectors of another width than the project's set", NPY_ROWS,
         [Bad(None, None, "these embeddings have 4 features but the project's 'precomputed:emb' set has 2")],
         before="id,label,role\nf0,cat,seed\n", before_vectors=np.ones((1, 2)), kwargs=_emb(V3),
         good={"f0": {"label": "cat", "vector": np.ones(2)}}),
]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def _matches(issue, bad: Bad, default_file: str) -> bool:
    return (issue.row == bad.row and issue.field == bad.field and issue.severity == bad.severity
            and bad.reason in issue.reason and (bad.file or default_file) in issue.file)


def _stored(project: Project) -> dict[str, dict[str, Any]]:
    frame = project.store.items_frame(include_hidden=True)
    core = {"id", "uri", "role", "label", "source", "iteration_added", "content_hash", "oracle_label"}
    out = {}
    for rec in frame.to_dict("records"):
        attrs = {k: v for k, v in rec.items() if k not in core and not (isinstance(v, float) and np.isnan(v))
                 and v is not None}
        out[rec["id"]] = {**{k: (None if isinstance(rec[k], float) else rec[k]) for k in
                             ("role", "label", "source", "oracle_label", "uri")}, "attrs": attrs}
    return out


@dataclass
class Outcome:
    """What one case's ingest did: the project, the ingested path, items before it, and its report or error."""

    project: Project
    target: Path
    n_before: int
    report: IngestReport | None = None
    error: IngestError | None = None


def run_case(case: Case, work: Path) -> Outcome:
    """Write a case's input under ``work`` and ingest it into a new project (closed by the caller)."""
    data = work / "data"
    data.mkdir(parents=True)
    for k, rel in enumerate(case.images, start=1):
        _png(data / rel, k)
    if case.setup is not None:
        case.setup(data)
    project = Project.create(work / "proj")
    if case.before is not None:
        extra = {}
        if case.before_vectors is not None:
            np.save(data / "before.npy", case.before_vectors)
            extra = {"embeddings": data / "before.npy", "embedding_name": "emb"}
        project.ingest_manifest(_write(data / "before.csv", case.before), **extra)
    outcome = Outcome(project, data, len(project.store.item_ids()))
    if callable(case.manifest):
        outcome.target = case.manifest(data)
    elif case.manifest is not None:
        outcome.target = _write(data / MANIFEST, case.manifest)
    kwargs = case.kwargs(data) if callable(case.kwargs) else dict(case.kwargs)
    try:
        if case.folder:
            outcome.report = project.ingest_folder(outcome.target, **kwargs)
        else:
            outcome.report = project.ingest_manifest(outcome.target, **kwargs)
    except IngestError as exc:
        outcome.error = exc
    return outcome


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input(case: Case, corpus_root: Path):
    if case.skip:
        pytest.skip(case.skip)
    outcome = run_case(case, corpus_root / f"case{CASES.index(case):03d}")
    project, target, n_before, report = outcome.project, outcome.target, outcome.n_before, outcome.report
    try:
        if outcome.error is not None:
            message = str(outcome.error)
            assert case.raises is not None, f"unexpected IngestError: {message}"
            shown = (str(target) if len(str(target)) < 200 else str(target)[:150]).replace("\x00", "\\x00")
            assert case.raises in message, message
            assert shown in message or "data root" in message or "role" in case.raises, message
            assert len(project.store.item_ids()) == n_before
            return
        assert case.raises is None, f"expected an IngestError ({case.raises}), got a report"

        # Every expected entry is in the report, and nothing else is.
        issues = list(report.issues)
        default_file = target.name
        for bad in case.bad:
            hit = next((i for i in issues if _matches(i, bad, default_file)), None)
            assert hit is not None, f"missing report entry {bad}; report: {report.to_frame().to_dict('records')}"
            issues.remove(hit)
        assert not issues, f"unexpected report entries: {issues}"
        for issue in report.issues:
            assert issue.file and issue.reason
            if issue.row is not None and issue.severity == "error":
                assert issue.field is not None or "malformed" in issue.reason or "values but" in issue.reason

        # The good rows load, with exactly the values they were given.
        stored = _stored(project)
        assert set(stored) == set(case.good), (sorted(stored), sorted(case.good))
        assert report.n_loaded == len(case.good) - n_before
        vectors: dict[str, np.ndarray] = {}
        for model_key in project.store.embedding_sets()["model"]:
            emb = project.embeddings(model_key)
            vectors.update(zip(emb.ids, emb.vectors))
        for item_id, want in case.good.items():
            got = stored[item_id]
            role = want.get("role", "seed")
            assert got["role"] == role, item_id
            assert got["label"] == want.get("label"), item_id
            assert got["oracle_label"] == want.get("oracle_label"), item_id
            assert got["source"] == want.get("source", "pool" if role == "pool" else "real"), item_id
            assert got["attrs"] == want.get("attrs", {}), item_id
            if "vector" in want:
                assert np.array_equal(vectors[item_id], np.asarray(want["vector"], dtype=np.float32)), item_id
            elif item_id in vectors:
                pytest.fail(f"{item_id} got a vector it was not given")
            if "path_suffix" in want:
                assert got["uri"].endswith(want["path_suffix"])
        # The report is stored as shown: it survives a reopen.
        again = project.last_ingest_report()
        assert again.to_frame().equals(report.to_frame())
    finally:
        project.close()


def test_corpus_is_large_enough_and_documented():
    assert len({c.kind for c in CASES}) == len(CASES) >= 60
    doc = (Path(__file__).resolve().parents[3] / "docs" / "bad_input.md").read_text(encoding="utf-8")
    missing = [c.kind for c in CASES if f"| {c.kind} |" not in doc]
    assert not missing, f"kinds not in docs/bad_input.md: {missing}"
