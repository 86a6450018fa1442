"""Item URIs: paths inside the data root are stored relative to it and resolve back to the same files."""

from __future__ import annotations

from adde_core.workspace import Workspace


def test_resolve_uris_matches_resolve_uri_for_relative_absolute_and_missing(tmp_path):
    ws = Workspace(root=tmp_path / "project", store=None, data_root=tmp_path / "data")  # type: ignore[arg-type]
    inside = tmp_path / "data" / "images" / "cat" / "a 1.png"
    outside = tmp_path / "elsewhere" / "b.png"
    uris = [ws.to_uri(inside), ws.to_uri(outside), None, float("nan")]
    assert uris[0] == "images/cat/a 1.png" and uris[1] == outside.as_posix()
    assert ws.resolve_uris(uris) == [str(ws.resolve_uri(uris[0])), str(ws.resolve_uri(uris[1])), None, None]
    assert ws.resolve_uris(uris)[:2] == [str(inside), str(outside)]
