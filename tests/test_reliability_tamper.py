"""Mismatches, tampering and security (issue 7), and `vidseek doctor`.

An index built with another bundle, a bundle whose graph was modified, a bundle of a newer format
or with a damaged bundle.json, a feature cache that disagrees with the catalog, catalog and bundle
paths that leave their folders: each is refused (or ignored) with a message that says what is
wrong and how to fix it. Nothing in the package unpickles a file. `vidseek doctor` finds these
problems too, and exits with status 1 when something is wrong.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from blocking import run_blocked
from helpers import QUERY, check_index, invoke, run_index
from vidseek.index.integrity import check as check_integrity
from vidseek.engine.bundle import BundleError, load_bundle
from vidseek.index.cache import FeatureCache
from vidseek.index.catalog import Catalog, FileState, IndexMismatch, UnsafePath
from vidseek.library.searcher import Searcher

PACKAGE = Path(__file__).resolve().parents[1] / "vidseek"


@pytest.fixture(scope="module")
def indexed(tiny_world, write_video, tmp_path_factory):
    """A bundle of its own (tests change it), a library of three videos and its index."""
    folder = tmp_path_factory.mktemp("tamper")
    bundle = shutil.copytree(tiny_world.bundle, folder / "bundle")
    library = folder / "lib"
    for k in range(3):
        write_video(library / f"v{k}.mp4", seconds=6 + 2 * k, seed=k)
    index = folder / "idx"
    code, out = run_index(library, index, bundle)
    assert code == 0, out
    return bundle, library, index


@pytest.fixture
def copy(indexed, tmp_path):
    """A private copy of the bundle, library and index (the index pointing at the copied bundle)."""
    bundle, library, index = (shutil.copytree(p, tmp_path / p.name) for p in indexed)
    db = sqlite3.connect(index / "catalog.sqlite")
    db.execute("UPDATE settings SET value = ? WHERE key = 'bundle'", (json.dumps(str(bundle)),))
    db.execute("UPDATE settings SET value = ? WHERE key = 'root'", (json.dumps(str(library.resolve())),))
    db.commit()
    db.close()
    return bundle, library, index


def rehash(bundle: Path, name: str) -> None:
    """Record the current sha256 of `name` in bundle.json (a legitimately re-exported file)."""
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / "bundle.json").write_text(json.dumps(meta))


def edit_meta(bundle: Path, change) -> None:
    meta = json.loads((bundle / "bundle.json").read_text())
    change(meta)
    (bundle / "bundle.json").write_text(json.dumps(meta))


def search(index: Path):
    return invoke("search", QUERY, "--index", index, "--top-k", 20)


def doctor(index: Path):
    return invoke("doctor", "--index", index)


# ---- mismatches ----------------------------------------------------------------------------------
def test_index_built_with_another_bundle_is_refused_naming_both(copy, tmp_path):
    bundle, library, index = copy
    before = load_bundle(bundle).fingerprint
    other = shutil.copytree(bundle, tmp_path / "other")
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text() + "\n")  # another model, validly hashed
    rehash(other, "tokenizer.json")
    after = load_bundle(other).fingerprint
    r = invoke("index", library, "--index", index, "--model", other, "--no-progress")
    assert r.exit_code == 1 and before in r.output and after in r.output and "do not mix" in r.output, r.output

    with pytest.raises(IndexMismatch, match=f"{before}.*{after}.*use the bundle with fingerprint {before}"):
        Searcher(index, bundle_dir=other)
    shutil.rmtree(bundle)
    shutil.copytree(other, bundle)  # the index's own bundle folder now holds another model
    r = search(index)
    assert r.exit_code == 1 and before in r.output and after in r.output and "Traceback" not in r.output, r.output
    r = doctor(index)
    assert r.exit_code == 1 and f"FAIL  bundle: {bundle} has fingerprint {after}" in r.output, r.output


def test_modified_graph_file_is_refused(copy):
    bundle, library, index = copy
    head = bytearray((bundle / "head.onnx").read_bytes())
    head[len(head) // 2] ^= 0x01  # one bit
    (bundle / "head.onnx").write_bytes(bytes(head))
    for r in (search(index), invoke("index", library, "--index", index, "--model", bundle, "--no-progress")):
        assert r.exit_code == 1 and "head.onnx does not match bundle.json (sha256" in r.output, r.output
        assert "modified or damaged; re-export the bundle with `vidseek export`" in r.output
    r = doctor(index)
    assert r.exit_code == 1 and "FAIL  bundle:" in r.output and "head.onnx does not match" in r.output, r.output
    assert "fix: restore the bundle folder" in r.output


def test_bundle_of_a_newer_format_is_refused(copy):
    bundle, library, index = copy
    edit_meta(bundle, lambda meta: meta.update(format_version=99))
    for r in (search(index), invoke("index", library, "--index", index, "--model", bundle, "--no-progress")):
        assert r.exit_code == 1 and "format version 99" in r.output and "upgrade vidseek" in r.output, r.output


@pytest.mark.parametrize(("damage", "says"), [
    (lambda b: (b / "bundle.json").write_bytes(b"\xff\xfe not json"), "is not valid JSON"),
    (lambda b: (b / "bundle.json").write_text("[1, 2, 3]"), "format version None"),
    (lambda b: edit_meta(b, lambda m: m.update(files=["head.onnx"])), "'files' must map file names"),
    (lambda b: edit_meta(b, lambda m: m.pop("graphs")), "'graphs' must map graph names"),
    (lambda b: edit_meta(b, lambda m: m["files"].pop("head.onnx")), "head.onnx not listed in 'files'"),
    (lambda b: edit_meta(b, lambda m: m["words"].pop("tokenizer")), "'words' must name the tokenizer"),
])
def test_damaged_bundle_description_is_refused_clearly(copy, damage, says):
    bundle, library, index = copy
    damage(bundle)
    with pytest.raises(BundleError, match="re-export|upgrade vidseek") as err:
        load_bundle(bundle)
    assert says in str(err.value)
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 1 and says in r.output and "Traceback" not in r.output, r.output


# ---- a feature cache that disagrees with the catalog -------------------------------------------
def damage_states(index: Path, vid: int) -> None:
    cache = FeatureCache(index, "states")
    cache.put(vid, np.asarray(cache.get(vid))[:2])  # fewer steps than the catalog records


def damage_clips(index: Path, vid: int) -> None:
    cache = FeatureCache(index, "clips")
    three = np.asarray(cache.get(vid))
    cache.put(vid, np.concatenate([three, three]))  # more windows than the video has
    (index / "clips.faiss").unlink()  # so that the clips are read from the cache


def damage_width(index: Path, vid: int) -> None:
    cache = FeatureCache(index, "states")
    cache.put(vid, np.zeros((np.asarray(cache.get(vid)).shape[0], 3)))  # another state width


def garbage(index: Path, vid: int) -> None:
    FeatureCache(index, "states").path(vid).write_bytes(b"not an array")


@pytest.mark.parametrize("damage", [damage_states, damage_clips, damage_width, garbage])
def test_feature_cache_that_disagrees_with_the_catalog_is_found_and_repaired(copy, damage):
    """integrity_check and doctor name the file and say what to do; `vidseek index` re-encodes
    just that video, after which the index is sound and searches work."""
    bundle, library, index = copy
    with Catalog(index, readonly=True) as cat:
        vid = cat.video("v1.mp4").id
        ids = {v.path: v.id for v in cat.videos()}
    damage(index, vid)
    with Catalog(index, readonly=True) as cat:
        problems = check_integrity(cat)
    assert len(problems) == 1 and f"{vid}." in problems[0] and "v1.mp4" in problems[0], problems
    r = doctor(index)
    assert r.exit_code == 1 and "FAIL  integrity:" in r.output and "re-encodes videos" in r.output, r.output
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "1 changed" in r.output and "indexed 1 " in r.output, r.output
    after = check_index(index)
    assert after["v1.mp4"] != vid and {p: i for p, i in after.items() if p != "v1.mp4"} == \
        {p: i for p, i in ids.items() if p != "v1.mp4"}  # only the damaged video was encoded again
    assert doctor(index).exit_code == 0


@pytest.mark.parametrize("damage", [damage_states, damage_clips, damage_width, garbage])
def test_search_skips_a_video_whose_cache_is_damaged_and_says_what_to_do(copy, damage):
    """`vidseek search` skips the damaged video with a warning that names it and says to run
    `vidseek index` (which re-encodes it, see above); the other videos are still found."""
    bundle, library, index = copy
    with Catalog(index, readonly=True) as cat:
        vid = cat.video("v1.mp4").id
    damage(index, vid)
    r = search(index)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert f"warning: skipped 'v1.mp4' (video {vid}): its cached features do not fit the catalog" in r.output, r.output
    assert f"run `vidseek index {library.resolve()} --index {index}` to encode it again" in r.output, r.output
    found = {line.split()[-1] for line in r.output.splitlines() if line.split() and line.split()[0].isdigit()}
    assert found and "v1.mp4" not in found, r.output


def test_a_damaged_video_is_skipped_by_every_search_and_refused_alone(copy):
    """The Python API warns once (DamagedVideoWarning), lists the video in ``Searcher.damaged``,
    skips it in later searches without warning again, and refuses a search of that video alone
    with the CacheError that says what to do."""
    from vidseek.library.searcher import DamagedVideoWarning, Searcher
    from vidseek.index.cache import CacheError

    bundle, library, index = copy
    with Catalog(index, readonly=True) as cat:
        vid = cat.video("v2.mp4").id
    damage_states(index, vid)
    with Searcher(index) as searcher:
        with pytest.warns(DamagedVideoWarning, match="skipped 'v2.mp4'.*vidseek index"):
            first = searcher.search(QUERY, top_k=20)
        assert first and "v2.mp4" not in {m.video for m in first} and set(searcher.damaged) == {vid}
        with warnings.catch_warnings():
            warnings.simplefilter("error", DamagedVideoWarning)  # no second warning
            assert searcher.search(QUERY, top_k=20) == first
            with pytest.raises(CacheError, match="skipped 'v2.mp4'.*vidseek index"):
                searcher.search(QUERY, video="v2.mp4")
            assert {m.video for m in searcher.search(QUERY, video="v0.mp4")} == {"v0.mp4"}
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "indexed 1 " in r.output, r.output  # `vidseek index` repairs it
    with Searcher(index) as searcher:
        assert searcher.damaged == {} and searcher.search(QUERY, video="v2.mp4")


# ---- paths that leave their folder ---------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.mp4"])
def test_catalog_rows_that_leave_the_library_are_ignored_and_removed(copy, bad):
    """A row whose path leaves the library root (the catalog was edited) is never served: search
    ignores it even though its features are cached, info, the integrity check and doctor name it,
    recording such a path is refused, and the next `vidseek index` removes the row."""
    bundle, library, index = copy
    with Catalog(index, readonly=True) as cat:
        vid = cat.video("v0.mp4").id
    db = sqlite3.connect(index / "catalog.sqlite")
    db.execute("UPDATE videos SET path = ? WHERE id = ?", (bad, vid))  # cache files and clips stay in place
    db.commit()
    db.close()
    r = search(index)
    assert r.exit_code == 0 and bad not in r.output and "v1.mp4" in r.output, r.output
    with Searcher(index) as s:  # its rows are read on demand: the row is no video there either
        assert vid not in s.videos and len(s.videos) == 2 and vid not in list(s.videos)
        assert sorted(v.path for v in s.videos.values()) == ["v1.mp4", "v2.mp4"]
    with Catalog(index, readonly=True) as cat:
        assert cat.ok_ids() == sorted(v.id for v in cat.videos("ok"))
        row = cat.video(vid)
        assert row.status == "error" and "leaves the library root" in row.error and "ignored" in row.error
        assert vid not in {v.id for v in cat.videos("ok")} and cat.counts()["ok"] == 2
        assert any(bad in p for p in check_integrity(cat))
        with pytest.raises(UnsafePath):
            cat.resolve(bad)
    with Catalog(index) as cat:
        for record in (lambda: cat.record_pending(FileState(bad, 1, 1, "h")),
                       lambda: cat.record_error(bad, "x")):
            with pytest.raises(UnsafePath, match="library root"):
                record()
    r = invoke("info", "--index", index)
    assert r.exit_code == 0 and f"error  {bad}: catalog path" in r.output, r.output
    r = doctor(index)
    assert r.exit_code == 1 and "FAIL  integrity: video" in r.output and bad in r.output, r.output
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0 and "1 new" in r.output and "1 deleted" in r.output, r.output  # v0.mp4 comes back
    assert sorted(check_index(index)) == ["v0.mp4", "v1.mp4", "v2.mp4"]


@pytest.mark.parametrize("where", ["files", "graph", "tokenizer", "symlink"])
def test_bundle_files_must_stay_in_the_bundle_folder(copy, tmp_path, where):
    bundle, library, index = copy
    outside = tmp_path / "outside.onnx"
    shutil.copy(bundle / "head.onnx", outside)
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    if where == "files":
        edit_meta(bundle, lambda m: m["files"].update({"../outside.onnx": digest}))
    elif where == "graph":
        edit_meta(bundle, lambda m: (m["graphs"]["head"].update(file=str(outside)), m["files"].update({str(outside): digest})))
    elif where == "tokenizer":
        edit_meta(bundle, lambda m: (m["words"].update(tokenizer="../../tokenizer.json"),
                                     m["files"].update({"../../tokenizer.json": digest})))
    else:  # a graph inside the folder that is a link to a file outside it
        (bundle / "head.onnx").unlink()
        (bundle / "head.onnx").symlink_to(outside)
        rehash(bundle, "head.onnx")
    with pytest.raises(BundleError, match="outside the bundle folder; the bundle is corrupt or unsafe"):
        load_bundle(bundle)
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 1 and "outside the bundle folder" in r.output, r.output


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def test_nothing_in_the_package_unpickles_a_file():
    """No pickle/marshal/shelve/dill/joblib loading; torch.load only with weights_only=True; np.load
    never with allow_pickle=True; yaml only through safe_load. (Weights are safetensors.)"""
    bad = []
    sources = sorted(PACKAGE.rglob("*.py"))
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "shelve", "marshal", "joblib") for n in names):
                    bad.append(f"{path}:{node.lineno} imports a pickle-like module")
        for node, owner, name in _calls(tree):
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if owner == "torch" and name == "load":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    bad.append(f"{where}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and name == "load":
                flag = keywords.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    bad.append(f"{where}: np.load that may allow pickles")
            if name in ("read_pickle", "unsafe_load") or (owner == "yaml" and name in ("load", "full_load")):
                bad.append(f"{where}: {owner}.{name} can run code from the file")
    assert len(sources) > 30 and bad == [], bad
    assert "load_file" in (PACKAGE / "trainer" / "checkpoint.py").read_text()  # weights come from safetensors


# ---- vidseek doctor ------------------------------------------------------------------------------
def test_doctor_reports_a_sound_installation_and_index(copy):
    bundle, library, index = copy
    r = doctor(index)
    assert r.exit_code == 0, r.output
    for line in ("OK    vidseek: ", "OK    python: ", "OK    numpy: ", "OK    onnxruntime: ", "OK    faiss: ",
                 "OK    av: ", "onnxruntime providers: ", "GPU: ", "built-in bundle: ", "OK    integrity: ",
                 f"OK    bundle: excl-clf-2b, fingerprint {load_bundle(bundle).fingerprint}, files verified",
                 "OK    cache: 3 videos' features cached, none left over", "0 problems"):
        assert line in r.output, (line, r.output)


def test_doctor_finds_leftovers_of_an_interrupted_run_and_a_missing_index(copy, tmp_path, write_video):
    bundle, library, index = copy
    write_video(library / "v3.mp4", seconds=5, seed=3)
    with Catalog(index) as cat:  # what a run killed while encoding v3.mp4 leaves: a pending row, stray files
        cat.record_pending(FileState("v3.mp4", 1, 1, "h"))
    FeatureCache(index, "states").put(999, np.ones((3, 4)))
    r = doctor(index)
    assert "WARN  index" in r.output and "1 videos were being encoded when a run stopped" in r.output, r.output
    assert "WARN  cache: cache files of 1 videos the catalog no longer lists (ids 999)" in r.output
    assert r.exit_code == 0  # warnings only: searches work
    r = invoke("index", library, "--index", index, "--model", bundle, "--no-progress")
    assert r.exit_code == 0, r.output
    r = doctor(index)
    assert r.exit_code == 0 and "WARN  index" not in r.output and "WARN  cache" not in r.output, r.output
    (library / "v0.mp4").rename(tmp_path / "moved.mp4")
    shutil.rmtree(library)
    r = doctor(index)
    assert r.exit_code == 0 and "WARN  library: the library folder" in r.output, r.output
    r = doctor(tmp_path / "nowhere")
    assert r.exit_code == 1 and "FAIL  index" in r.output and "no index here" in r.output, r.output


DOCTOR_WITHOUT_TORCH = """
import sys
from vidseek.cli.main import cli
try:
    cli.main(["doctor", "--index", sys.argv[1]], standalone_mode=False)
except SystemExit:
    pass
assert "torch" not in sys.modules
print("torch-free")
"""


def test_doctor_runs_without_torch(copy):
    bundle, library, index = copy
    r = run_blocked(DOCTOR_WITHOUT_TORCH, str(index))
    assert r.returncode == 0 and "torch-free" in r.stdout and "OK    integrity" in r.stdout, r.stderr[-2000:]


class FakeOrt:
    """onnxruntime as doctor sees it: only its providers."""

    def __init__(self, *providers: str):
        self.providers = list(providers)

    def get_available_providers(self) -> list[str]:
        return self.providers


def test_doctor_says_when_the_gpu_and_onnxruntime_disagree(tmp_path, monkeypatch):
    """A GPU that nvidia-smi sees but onnxruntime cannot use (CPU-only wheel), and the reverse."""
    from vidseek.library.doctor import _gpu

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.86, 143771 MiB'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    found = {f.level: f for f in _gpu(FakeOrt("CPUExecutionProvider"), None) if f.topic == "GPU"}
    assert found["ok"].detail == "NVIDIA H200, 570.86, 143771 MiB"
    assert "no CUDA provider" in found["warn"].detail and "vidseek[gpu]" in found["warn"].fix
    assert not [f for f in _gpu(FakeOrt("CUDAExecutionProvider", "CPUExecutionProvider"), None) if f.level == "warn"]
    smi.unlink()
    found = [f for f in _gpu(FakeOrt("CUDAExecutionProvider"), None) if f.level == "warn"]
    assert len(found) == 1 and "no GPU is visible" in found[0].detail
