"""Bad files in a library (issue 7): every file is indexed or skipped with a recorded reason, and
the rest of the library is indexed.

One library holds every kind of trouble at once: empty, truncated, mislabelled and audio-only
files, extreme sizes and lengths, variable frame rate, awkward names, symlink loops and a FIFO.
"""

from __future__ import annotations

import fractions
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import QUERY, check_index, run_index, write_video
from vidseek.index.integrity import check as check_integrity
from vidseek.index.catalog import Catalog

NON_UTF8 = os.fsdecode(b"caf\xe9 latin-1.mp4")  # a name that is not UTF-8 (surrogate-escaped by Python)
UNICODE = "ビデオ 🎬 видео ñ.mp4"
NEWLINE = "two\nlines.mp4"

# file -> (status, what its error says); None: no catalog row at all
EXPECTED = {
    "good.mp4": ("ok", None),
    "UPPER.MP4": ("ok", None),
    "empty.mp4": ("error", "empty file"),
    "notes.mp4": ("error", "not a video"),
    "audio_only.mp4": ("error", "no video stream"),
    "cut_index.mp4": ("error", "truncated or corrupt MP4"),
    "cut_faststart.mp4": ("ok", None),  # the part that is there is indexed
    "tall.mp4": ("ok", None),
    "wide.mp4": ("ok", None),
    "one_frame.mp4": ("ok", None),
    "long.mp4": ("ok", None),
    "vfr.mp4": ("ok", None),
    UNICODE: ("ok", None),
    NEWLINE: ("ok", None),
    NON_UTF8: ("ok", None),
    "link.mp4": ("ok", None),  # a symlink to good.mp4
    "loop.mp4": ("error", "a symbolic link to loop.mp4 that cannot be followed (Too many levels"),  # to itself
    "dangling.mp4": ("error", "a symbolic link to nowhere/at/all.mp4 that cannot be followed (No such file"),
    "pipe.mp4": ("error", "not a regular file"),  # a FIFO: opening it would block forever
    "sub/deeper/nested.mp4": ("ok", None),
}


def write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.pts, frame.time_base = 0, fractions.Fraction(1, 16000)
        c.mux(s.encode(frame))
        c.mux(s.encode())


def make_bad_library(folder: Path) -> Path:
    """The library of EXPECTED (every file made here, seeded)."""
    folder.mkdir(parents=True)
    good = write_video(folder / "good.mp4", seconds=6, seed=1)
    shutil.copyfile(write_video(folder / "tmp.mp4", seconds=5, seed=2), folder / "UPPER.MP4")
    (folder / "tmp.mp4").unlink()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("shopping list: eggs, milk, flour\n" * 40)
    write_audio_only(folder / "audio_only.mp4")
    whole = write_video(folder / "whole.mp4", seconds=12, seed=3).read_bytes()  # moov index at the end
    (folder / "cut_index.mp4").write_bytes(whole[: len(whole) * 2 // 5])
    (folder / "whole.mp4").unlink()
    faststart = _faststart(write_video(folder / "fs.mp4", seconds=12, seed=4))
    (folder / "cut_faststart.mp4").write_bytes(faststart[: len(faststart) * 3 // 5])
    (folder / "fs.mp4").unlink()
    write_video(folder / "tall.mp4", seconds=3, size=(4, 720), seed=5)  # 1:180
    write_video(folder / "wide.mp4", seconds=3, size=(1280, 2), seed=6)  # 640:1
    write_video(folder / "one_frame.mp4", seconds=0.2, fps=5, seed=7)
    write_video(folder / "long.mp4", seconds=30 * 60, fps=1, size=(16, 16), seed=8)  # 30 minutes, 1800 frames
    rng = np.random.default_rng(9)
    write_video(folder / "vfr.mp4", seconds=0, seed=9, pts_ms=np.cumsum(np.r_[0, rng.choice([20, 90, 400, 1500], 30)]))
    for name in (UNICODE, NEWLINE, NON_UTF8):
        shutil.copyfile(good, folder / name)
    (folder / "link.mp4").symlink_to("good.mp4")
    (folder / "loop.mp4").symlink_to("loop.mp4")
    (folder / "dangling.mp4").symlink_to("nowhere/at/all.mp4")
    os.mkfifo(folder / "pipe.mp4")
    (folder / "sub" / "deeper").mkdir(parents=True)
    write_video(folder / "sub" / "deeper" / "nested.mp4", seconds=4, seed=10)
    (folder / "sub" / "deeper" / "up").symlink_to("../..", target_is_directory=True)  # a folder loop
    (folder / "folder.mp4").mkdir()  # a folder with a video's name: looked into, not read
    return folder


def _faststart(path: Path) -> bytes:
    """The MP4 at `path` remuxed with its index (moov) first, as web videos are."""
    import av

    out = path.with_name("faststart.mp4")
    with av.open(str(path)) as src, av.open(str(out), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = out.read_bytes()
    out.unlink()
    assert data[4:8] == b"ftyp" and b"moov" in data[:4096]
    return data


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_every_bad_file_is_indexed_or_skipped_with_a_reason(tiny_world, tmp_path):
    library = make_bad_library(tmp_path / "lib")
    index = tmp_path / "idx"
    code, out = run_index(library, index, tiny_world.bundle, timeout=600)
    assert code == 0, out
    errors = sum(status == "error" for status, _ in EXPECTED.values())
    ok = len(EXPECTED) - errors
    assert f"indexed {ok} " in out and f"errors {errors}" in out, out
    with Catalog(index, readonly=True) as cat:
        rows = {v.path: v for v in cat.videos()}
        assert check_integrity(cat) == []
        assert cat.counts() == {"ok": ok, "error": errors, "pending": 0}
    assert set(rows) == set(EXPECTED), sorted(set(rows) ^ set(EXPECTED))
    for name, (status, reason) in EXPECTED.items():
        row = rows[name]
        assert row.status == status, (name, row.error)
        if reason is not None:
            assert reason in row.error, (name, row.error)
            assert f"skipped {name.encode('utf-8', 'backslashreplace').decode()}" in out or "\n" in name, out
    long = rows["long.mp4"]
    assert long.duration == pytest.approx(1800, abs=1) and long.steps == round(long.duration)  # 1 step per second
    assert rows["one_frame.mp4"].steps == 1
    assert 3 <= rows["cut_faststart.mp4"].steps < 12  # the 60 % that is there
    assert rows[NON_UTF8].steps == rows[UNICODE].steps == rows["good.mp4"].steps == 6
    found = check_index(index)
    assert set(found) == {name for name, (status, _) in EXPECTED.items() if status == "ok"}

    code, out = run_index(library, index, tiny_world.bundle, timeout=600)  # again: nothing to do, errors not retried
    assert code == 0 and "indexed 0," in out and "0 new, 0 changed" in out, out
    with Catalog(index, readonly=True) as cat:
        assert {v.path: v.id for v in cat.videos()} == {p: v.id for p, v in rows.items()}


def test_search_results_name_awkward_files_readably(tiny_world, tmp_path, invoke):
    """Moments of files with non-UTF-8, unicode and newline names print in `vidseek search`."""
    library = tmp_path / "lib"
    good = write_video(library / "good.mp4", seconds=6, seed=1)
    for name in (UNICODE, NON_UTF8, NEWLINE):
        shutil.copyfile(good, library / name)
    index = tmp_path / "idx"
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0 and "indexed 4 " in r.output, r.output
    r = invoke("search", QUERY, "--index", index, "--top-k", 20)
    assert r.exit_code == 0, r.output
    assert UNICODE in r.output and "caf\\xe9 latin-1.mp4" in r.output, r.output
    r = invoke("info", "--index", index)
    assert r.exit_code == 0 and "4 ok" in r.output and "integrity ok" in r.output, r.output


def test_a_backend_this_machine_lacks_stops_the_run_and_blames_no_file(tiny_world, tmp_path, invoke):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has onnxruntime's CUDA provider")
    library = tmp_path / "lib"
    write_video(library / "a.mp4", seconds=6, seed=1)
    write_video(library / "b.mp4", seconds=6, seed=2)
    index = tmp_path / "idx"
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--backend", "onnxruntime-cuda",
               "--no-progress")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "no CUDAExecutionProvider" in r.output, r.output
    with Catalog(index, readonly=True) as cat:
        assert cat.videos() == []  # neither file is marked as failed: the next run encodes both
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert r.exit_code == 0 and "indexed 2 " in r.output, r.output


def test_a_file_that_failed_is_skipped_until_retry_errors(tiny_world, tmp_path, invoke, monkeypatch):
    from vidseek.library import indexer

    library = tmp_path / "lib"
    write_video(library / "a.mp4", seconds=6, seed=1)
    index = tmp_path / "idx"
    monkeypatch.setattr(indexer, "encode_file", lambda *a: indexer.Encoded(error="OSError: the disk was busy"))
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert "errors 1" in r.output and "skipped a.mp4: OSError: the disk was busy" in r.output, r.output
    monkeypatch.undo()  # whatever failed is fixed; the file did not change
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--no-progress")
    assert "indexed 0," in r.output and "1 file that failed before and did not change skipped (--retry-errors" in r.output
    r = invoke("index", library, "--index", index, "--model", tiny_world.bundle, "--retry-errors", "--no-progress")
    assert r.exit_code == 0 and "indexed 1 " in r.output and "errors 0" in r.output, r.output
    assert set(check_index(index)) == {"a.mp4"}
