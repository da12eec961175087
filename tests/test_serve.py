"""`vidseek serve`: the JSON API through FastAPI's test client (search, videos, info, Range requests,
thumbnails, clips, curves), its security (token, Host, traversal, symlinks, bounds, errors without
tracebacks), following an index that grows while it serves, and `vidseek clip` / `vidseek serve` on
the command line. The library is a copy of the shared three-video synthetic world indexed with the
built-in bundle, plus a symbolic link that leads out of it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="vidseek serve needs the serve extra: pip install 'vidseek[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from blocking import run_blocked  # noqa: E402
from browser import Chromium, find_chromium  # noqa: E402

QUERY = "person opens door"
NONSENSE = "qwzx blorft"
TOKEN = "open sesame 42"
HOSTS = ("127.0.0.1", "localhost", "::1", "testserver")  # the test client's requests say Host: testserver


@pytest.fixture(scope="module")
def library(synth_library, tmp_path_factory):
    """A copy of the three synthetic videos, a link to a video outside the library, and its index."""
    from vidseek import Index

    root = tmp_path_factory.mktemp("serve")
    videos = root / "videos"
    shutil.copytree(synth_library / "videos", videos)
    outside = root / "outside.mp4"
    shutil.copy(sorted(videos.glob("*.mp4"))[0], outside)
    (videos / "zz-link-out.mp4").symlink_to(outside)
    with Index(root / "index") as index:
        report = index.add(videos, model="builtin")
    assert len(report.indexed) == 4 and not report.errors
    return root


@pytest.fixture(scope="module")
def client(library):
    from vidseek.serve.app import create_app

    with TestClient(create_app(library / "index", hosts=HOSTS, refresh_s=0), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def ids(client) -> dict[str, int]:
    """Catalog path -> id of the indexed videos."""
    r = client.get("/api/videos")
    assert r.status_code == 200
    return {v["path"]: v["id"] for v in r.json()["videos"]}


def error_of(r, status: int) -> str:
    """The message of an error answer, checked: the status, JSON {"error": ...}, no traceback."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"} and body["error"], body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


# ---- search ---------------------------------------------------------------------------------------
def test_search_answers_ranked_moments_with_the_urls_that_show_them(client, ids, library):
    r = client.get("/api/search", params={"q": QUERY, "top_k": 4, "min_score": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == QUERY and body["took_ms"] > 0 and body["best"] is None
    moments = body["moments"]
    assert 1 <= len(moments) <= 4 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
    for m in moments:
        assert ids[m["video"]] == m["video_id"] and 0 <= m["start"] < m["end"] and "path" not in m
        assert m["media_url"] == f"/api/media/{m['video_id']}"
        assert m["thumbnail_url"].startswith(f"/api/thumbnail/{m['video_id']}?t=")
    with_python = __import__("vidseek").Index(library / "index").search(QUERY, top_k=4, min_score=0)
    assert [(m.video, m.start, m.end) for m in with_python] == [(m["video"], m["start"], m["end"]) for m in moments]
    thumb = client.get(moments[0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:3] == b"\xff\xd8\xff"


def test_search_in_one_video_and_the_no_match_answer(client, ids):
    one = ids[sorted(ids)[1]]
    r = client.get("/api/search", params={"q": QUERY, "video": one, "min_score": 0})
    assert r.status_code == 200 and {m["video_id"] for m in r.json()["moments"]} == {one}
    nothing = client.get("/api/search", params={"q": NONSENSE}).json()
    assert nothing["moments"] == [] and nothing["best"]["score"] < nothing["threshold"]
    typed = client.get("/api/search", params={"q": "person opns the door a dog", "min_score": 0}).json()
    assert typed["corrections"] == [["opns", "opens"]] and typed["unseen_words"] == ["dog"]
    assert "/api/videos" in error_of(client.get("/api/search", params={"q": QUERY, "video": 999_999}), 404)


@pytest.mark.parametrize("params, status", [
    ({}, 400), ({"q": ""}, 400), ({"q": "   "}, 400), ({"q": "x" * 501}, 422),
    ({"q": QUERY, "top_k": 0}, 422), ({"q": QUERY, "top_k": 101}, 422), ({"q": QUERY, "top_k": "ten"}, 422),
    ({"q": QUERY, "min_score": 2}, 422), ({"q": QUERY, "video": "../etc"}, 404), ({"q": QUERY, "video": 999_999}, 404),
])
def test_bad_search_parameters_get_a_json_error_that_says_what_to_do(client, params, status):
    error_of(client.get("/api/search", params=params), status)


# ---- the catalog ----------------------------------------------------------------------------------
def test_videos_and_info(client, ids):
    videos = client.get("/api/videos").json()
    assert videos["total"] == 4 and {v["status"] for v in videos["videos"]} == {"ok"}
    assert all(v["duration"] > 5 and v["media_url"] == f"/api/media/{v['id']}" for v in videos["videos"])
    assert client.get("/api/videos", params={"limit": 1, "offset": 1}).json()["videos"][0]["path"] == sorted(ids)[1]
    error_of(client.get("/api/videos", params={"status": "gone"}), 422)
    info = client.get("/api/info").json()
    assert info["counts"] == {"ok": 4, "error": 0, "pending": 0} and info["model"] == "builtin"
    assert 0 < info["threshold"] < 1 and info["problems"] is None and info["generation"] == 1
    assert info["duration"] > 20 and info["window_s"] == 4.0 and info["failed"] == []
    assert client.get("/api/info", params={"check": True}).json()["problems"] == []
    assert "/tmp" not in json.dumps(info)  # no absolute paths of this machine
    schema = client.get("/api/openapi.json").json()
    assert {"/api/search", "/api/media/{video_id}", "/api/curve/{video_id}"} <= set(schema["paths"])


# ---- files ----------------------------------------------------------------------------------------
def test_media_serves_the_file_with_range_requests(client, ids, library):
    vid = ids[sorted(ids)[0]]
    data = (library / "videos" / sorted(ids)[0]).read_bytes()
    full = client.get(f"/api/media/{vid}")
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/media/{vid}", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = client.get(f"/api/media/{vid}", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert client.get(f"/api/media/{vid}", headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    head = client.head(f"/api/media/{vid}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data) and not head.content


def test_thumbnails_are_cached_in_the_index_folder(client, ids, library):
    vid = ids[sorted(ids)[0]]
    first = client.get(f"/api/thumbnail/{vid}", params={"t": 2.04})
    assert first.status_code == 200 and first.content[:3] == b"\xff\xd8\xff"
    cached = list((library / "index" / "thumbnails").glob(f"{vid}-*-2000.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.content
    assert client.get(f"/api/thumbnail/{vid}", params={"t": 2.0}).content == first.content
    assert client.get(f"/api/thumbnail/{vid}", params={"t": 10_000}).status_code == 200  # past the end: the last picture
    error_of(client.get(f"/api/thumbnail/{vid}", params={"t": -1}), 422)
    error_of(client.get(f"/api/thumbnail/{vid}", params={"t": "nan"}), 422)


def test_clip_cuts_the_span_into_an_mp4(client, ids, tmp_path):
    import av

    vid = ids[sorted(ids)[0]]
    r = client.get(f"/api/clip/{vid}", params={"start": 1.5, "end": 4.0})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert "attachment" in r.headers["content-disposition"]
    (tmp_path / "c.mp4").write_bytes(r.content)
    with av.open(str(tmp_path / "c.mp4")) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert times[0] == 0 and 2.3 <= times[-1] < 2.5 and len(times) >= 30  # 2.5 s at 15 fps
    error_of(client.get(f"/api/clip/{vid}", params={"start": 4, "end": 2}), 400)
    error_of(client.get(f"/api/clip/{vid}", params={"start": 0, "end": 700}), 400)
    error_of(client.get(f"/api/clip/{vid}", params={"start": 1}), 422)


def test_curve_gives_the_query_relevance_over_the_whole_video(client, ids):
    vid = ids[sorted(ids)[0]]
    curve = client.get(f"/api/curve/{vid}", params={"q": QUERY}).json()
    n = len(curve["values"])
    assert curve["stride_s"] == 2.0 and curve["window_s"] == 4.0 and n == len(curve["starts"]) == len(curve["ends"])
    assert curve["starts"][0] == 0 and abs(curve["ends"][-1] - curve["duration"]) < 0.3
    assert np.all(np.diff(curve["starts"]) > 0) and all(-1.01 <= v <= 1.01 for v in curve["values"])
    moments = client.get("/api/search", params={"q": QUERY, "video": vid, "min_score": 0, "top_k": 100}).json()["moments"]
    assert max(m["retrieval"] for m in moments) == pytest.approx(max(curve["values"]), abs=2e-3)  # the same cosines
    error_of(client.get(f"/api/curve/{vid}"), 400)
    error_of(client.get("/api/curve/123456", params={"q": QUERY}), 404)


def test_cut_starts_at_the_picture_on_screen_and_keeps_the_sound(tmp_path):
    import fractions

    import av

    from vidseek.library import media

    src = tmp_path / "sound.mp4"
    with av.open(str(src), "w") as c:  # 4 s: picture i is all grey level 6 * i, 10 pictures/s; a 440 Hz tone
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        for i in range(40):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 6 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, 10)
            c.mux(v.encode(f))
        for j in range(0, 64000, 1024):
            tone = np.sin(2 * np.pi * 440 * np.arange(j, j + 1024) / 16000)[None].astype(np.float32) * 0.3
            f = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, j
            c.mux(a.encode(f))
        c.mux(v.encode())
        c.mux(a.encode())
    media.cut(src, 1.25, 2.5, tmp_path / "cut.mp4")
    with av.open(str(tmp_path / "cut.mp4")) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
        pictures = [(float(f.time), int(f.to_ndarray(format="rgb24").mean())) for f in c.decode(video=0)]
    assert pictures[0][0] == 0 and abs(pictures[0][1] - 72) <= 3  # picture 12 (1.2 s) is on screen at 1.25 s
    assert len(pictures) == 13 and abs(pictures[-1][1] - 144) <= 3  # then 1.3 ... 2.4 s
    assert abs(media.frame_at(src, 1.25).mean() - 72) <= 3 and abs(media.frame_at(src, 99).mean() - 234) <= 3
    with pytest.raises(media.MediaError, match="start < end"):
        media.cut(src, 2, 1, tmp_path / "no.mp4")


def test_the_thumbnail_cache_keeps_the_newest_pictures(tmp_path):
    from vidseek.library import media

    for i in range(10):
        (tmp_path / f"1-abc-{i}.jpg").write_bytes(b"x")
        os.utime(tmp_path / f"1-abc-{i}.jpg", ns=(i * 10**9, i * 10**9))
    media._prune(tmp_path, keep=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-abc-8.jpg", "1-abc-9.jpg"]


# ---- security -------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "/api/media/..%2F..%2Fetc%2Fpasswd", "/api/media/%2Fetc%2Fpasswd", "/api/media/..", "/api/media/-1",
    "/api/media/1.0", "/api/media/1%00", "/api/media/0x1", "/api/thumbnail/..%2Fcatalog.sqlite?t=1",
    "/api/clip/%2E%2E?start=0&end=1", "/api/media/99999999999999999999999", "/static/..%2Fapp.py", "/api/media/",
])
def test_traversal_attempts_get_404(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "root:" not in r.text, (url, r.text[:300])
    error_of(r, 404) if r.headers["content-type"].startswith("application/json") else None


def test_files_are_served_by_id_only_and_never_out_of_the_library(client, ids, library):
    error_of(client.get(f"/api/media/{ids['zz-link-out.mp4']}"), 404)  # a symbolic link that leads out
    error_of(client.get(f"/api/thumbnail/{ids['zz-link-out.mp4']}", params={"t": 1}), 404)
    error_of(client.get("/api/media/123456"), 404)
    for path in ("/etc/passwd", str(library / "outside.mp4"), "syn_00000.mp4"):
        assert client.get("/api/media/" + path).status_code == 404


def test_a_token_guards_every_api_and_media_request(library):
    from vidseek.serve.app import TOKEN_COOKIE, create_app

    with TestClient(create_app(library / "index", token=TOKEN, refresh_s=0)) as c:
        assert c.get("/").status_code == 200  # the page holds no data
        for url in ("/api/info", "/api/videos", f"/api/search?q={QUERY}", "/api/media/1", "/api/thumbnail/1",
                    "/api/curve/1?q=door", "/api/clip/1?start=0&end=1", "/api/openapi.json", "//api/info",
                    "/%61pi/info", "/nothing"):
            assert "token" in error_of(c.get(url), 401)
        error_of(c.get("/api/info", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/api/info", params={"token": TOKEN}).status_code == 200
        assert c.get("/api/media/1", params={"token": TOKEN}).status_code == 200
        page = c.get("/", params={"token": TOKEN})
        assert TOKEN_COOKIE in page.headers["set-cookie"] and "httponly" in page.headers["set-cookie"].lower()
        assert c.get("/api/info").status_code == 200  # the cookie now
        c.cookies.clear()
        error_of(c.get("/api/info"), 401)


def test_without_a_token_only_loopback_host_names_are_answered(client):
    assert client.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/info", headers={"Host": "[::1]:8000"}).status_code == 200
    assert "answers requests for" in error_of(client.get("/api/info", headers={"Host": "evil.example"}), 400)


def test_the_page_loads_nothing_from_the_network(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("index.html", "app.js", "style.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, name


def test_an_unexpected_error_is_json_without_a_traceback(library, monkeypatch):
    from vidseek.serve.app import create_app

    app = create_app(library / "index", hosts=HOSTS, refresh_s=0)
    monkeypatch.setattr(app.state.live.index, "videos", lambda status=None: 1 / 0)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert "internal error" in error_of(c.get("/api/info"), 500)


# ---- an index that grows while the server runs ------------------------------------------------------
@pytest.mark.slow
def test_videos_indexed_while_it_serves_appear_and_searches_never_fail(library, tmp_path):
    from vidseek import Index
    from vidseek.serve.app import create_app

    videos = tmp_path / "videos"
    videos.mkdir()
    originals = sorted((library / "videos").glob("syn*.mp4"))
    shutil.copy(originals[0], videos / "a.mp4")
    Index(tmp_path / "index").add(videos, model="builtin")
    with TestClient(create_app(tmp_path / "index", hosts=HOSTS, refresh_s=0.05), raise_server_exceptions=False) as c:
        assert c.get("/api/info").json()["counts"]["ok"] == 1
        for i, src in enumerate(originals[1:]):
            shutil.copy(src, videos / f"b{i}.mp4")
        adding = threading.Thread(target=lambda: Index(tmp_path / "index").add(videos, model="builtin"))
        adding.start()
        answers = []
        while adding.is_alive() or len(answers) < 5:
            r = c.get("/api/search", params={"q": QUERY, "min_score": 0, "top_k": 20})
            answers.append((r.status_code, r.json()))
        adding.join()
        assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
        seen = [{m["video"] for m in body["moments"]} for _, body in answers]
        assert all(s <= {"a.mp4", "b0.mp4", "b1.mp4"} for s in seen)
        assert all(len(a) <= len(b) for a, b in zip(seen, seen[1:]))  # the index only ever grows as searches see it
        deadline = time.monotonic() + 10
        while c.get("/api/info").json()["generation"] < 2 or len(seen[-1]) < 3:
            assert time.monotonic() < deadline, "the server did not follow the index"
            seen.append({m["video"] for m in c.get("/api/search", params={"q": QUERY, "min_score": 0,
                                                                           "top_k": 20}).json()["moments"]})
        new = {v["path"]: v["id"] for v in c.get("/api/videos").json()["videos"]}
        assert set(new) == {"a.mp4", "b0.mp4", "b1.mp4"}
        assert c.get(f"/api/media/{new['b1.mp4']}").status_code == 200
        assert c.get("/api/search", params={"q": QUERY, "video": new["b0.mp4"], "min_score": 0}).status_code == 200


# ---- the command line -----------------------------------------------------------------------------
def test_vidseek_clip_writes_the_moment(invoke, library, tmp_path):
    import av

    out = tmp_path / "moment.mp4"
    video = sorted((library / "videos").glob("syn*.mp4"))[0]
    r = invoke("clip", video.name, "--start", 1, "--end", 3, "--out", out, "--index", library / "index")
    assert r.exit_code == 0 and out.is_file(), r.output
    with av.open(str(out)) as c:
        assert 1.8 < float(c.duration / 1e6) < 2.3
    r = invoke("clip", "nope.mp4", "--start", 1, "--end", 3, "--out", out, "--index", library / "index")
    assert r.exit_code == 1 and "not an indexed video" in r.output
    r = invoke("clip", "zz-link-out.mp4", "--start", 1, "--end", 3, "--out", out, "--index", library / "index")
    assert r.exit_code == 1 and "leads out of the library" in r.output
    assert invoke("clip", video.name, "--start", 3, "--end", 1, "--index", library / "index").exit_code == 2


def test_serve_refuses_other_addresses_without_a_token(invoke, library):
    r = invoke("serve", "--index", library / "index", "--host", "0.0.0.0")
    assert r.exit_code == 2 and "--token" in r.output and "--insecure-no-token" in r.output
    r = invoke("serve", "--index", library / "empty", "--port", 0)
    assert r.exit_code == 1 and "no index in" in r.output and "Traceback" not in r.output


def test_serve_without_the_extra_says_how_to_install_and_search_does_not_need_it(library):
    blocked = ("vidseek.trainer", "fastapi", "uvicorn", "starlette")
    r = run_blocked("from vidseek.cli.main import cli\ncli.main(['serve', '--index', sys.argv[1]])\n",
                    str(library / "index"), extra_prefixes=blocked)
    assert r.returncode == 1 and "pip install 'vidseek[serve]'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_blocked("from vidseek.cli.main import cli\n"
                    "cli.main(['search', 'person opens door', '--index', sys.argv[1], '--min-score', '0'])\n",
                    str(library / "index"), extra_prefixes=blocked)
    assert r.returncode == 0 and "rank" in r.stdout, r.stderr


@pytest.mark.slow
def test_serve_runs_and_prints_the_address_of_the_page(library):
    import httpx

    proc = subprocess.Popen([sys.executable, "-c", "from vidseek.cli.main import cli; cli()", "serve", "--index",
                             str(library / "index"), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("vidseek serve: http://127.0.0.1:"), line + proc.stderr.read() if proc.poll() else line
        url = line.split()[-1]
        assert httpx.get(url + "api/info", timeout=10).json()["counts"]["ok"] == 4
        assert "<title>vidseek</title>" in httpx.get(url, timeout=10).text
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err, (out, err)


# ---- in a real browser ----------------------------------------------------------------------------
@pytest.fixture
def served(library):
    """The app under uvicorn on a free loopback port, in a thread: its address."""
    yield from _serve(library / "index")


def _serve(index_dir):
    import uvicorn

    from vidseek.cli.serve_cmd import listen
    from vidseek.serve.app import create_app

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(index_dir, refresh_s=0), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(10)
    sock.close()


VIDEO = "document.getElementById('video-el')"


@pytest.mark.slow
def test_in_a_browser_a_click_on_a_card_plays_the_moment_from_its_start_to_its_end(served, tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium on PATH: install Debian's chromium (`.ci/run` does) to run the browser test")
    with Chromium() as browser:
        browser.open(served + "#q=" + QUERY.replace(" ", "%20"))
        browser.wait("document.querySelectorAll('.card').length > 0 || !document.getElementById('no-match').hidden")
        if not browser.evaluate("document.querySelectorAll('.card').length"):  # nothing above the threshold
            browser.click("#no-match button")
            browser.wait("document.querySelectorAll('.card').length > 0")
        assert browser.evaluate("document.querySelectorAll('.card img').length") == browser.evaluate("state.moments.length")
        i = browser.evaluate("state.moments.findIndex(m => !m.video.startsWith('zz-'))")  # not the link out
        moment = browser.evaluate(f"state.moments[{i}]")
        browser.evaluate(f"window.seeks = []; {VIDEO}.addEventListener('seeked', e => seeks.push(e.target.currentTime)); 1")
        browser.click(f".card[data-index='{i}']")  # the mouse, as a user clicks
        browser.wait("seeks.length > 0", timeout=10)
        assert browser.evaluate("seeks[0]") == pytest.approx(moment["start"], abs=0.1)
        assert browser.evaluate(f"{VIDEO}.videoWidth") > 0 and browser.evaluate(f"{VIDEO}.error") is None
        browser.wait(f"{VIDEO}.paused && {VIDEO}.currentTime > {moment['start']}", timeout=moment["end"] - moment["start"] + 10)
        assert moment["end"] - 0.05 <= browser.evaluate(f"{VIDEO}.currentTime") <= moment["end"] + 0.35  # stopped at the end
        browser.wait("document.querySelector('#curve polyline') !== null")
        browser.screenshot(tmp_path / "serve.png")
        if os.environ.get("VIDSEEK_SCREENSHOT"):
            shutil.copy(tmp_path / "serve.png", os.environ["VIDSEEK_SCREENSHOT"])
        browser.click("#curve")  # the middle of the curve: the middle of the video
        duration = browser.evaluate(f"{VIDEO}.duration")
        browser.wait(f"Math.abs({VIDEO}.currentTime - {duration / 2}) < 0.5 && !{VIDEO}.seeking && seeks.length > 1")
        browser.evaluate("document.querySelector('.card').focus()")  # by keyboard: Enter on the first card
        browser.evaluate("seeks = []")
        browser.press("Enter")
        start = browser.evaluate("state.moments[0].start")
        browser.wait(f"seeks.some(t => Math.abs(t - {start}) < 0.1)", timeout=10)


@pytest.fixture(scope="module")
def plpnet_index(library):
    """The library indexed with the built-in PLPNet bundle (phrases)."""
    from vidseek import Index

    with Index(library / "index-plpnet") as index:
        report = index.add(library / "videos", model="builtin-plpnet")
    assert len(report.indexed) == 4 and not report.errors
    return library / "index-plpnet"


@pytest.fixture
def served_plpnet(plpnet_index):
    yield from _serve(plpnet_index)


@pytest.mark.slow
def test_in_a_browser_a_phrase_model_shows_each_phrase_s_span_and_plays_it(served_plpnet):
    if find_chromium() is None:
        pytest.skip("no chromium on PATH: install Debian's chromium (`.ci/run` does) to run the browser test")
    with Chromium() as browser:
        browser.open(served_plpnet + "#q=" + "the person opens the door".replace(" ", "%20"))
        browser.wait("document.querySelectorAll('.card').length > 0 || !document.getElementById('no-match').hidden")
        if not browser.evaluate("document.querySelectorAll('.card').length"):
            browser.click("#no-match button")
            browser.wait("document.querySelectorAll('.card').length > 0")
        assert browser.evaluate("state.phrases") is True
        cards = browser.evaluate("state.moments.length")
        assert browser.evaluate("document.querySelectorAll('.card .phrases li').length") == 3 * cards  # 3 phrases each
        phrase = browser.evaluate("state.moments[0].phrases[1]")
        browser.evaluate(f"window.seeks = []; {VIDEO}.addEventListener('seeked', e => seeks.push(e.target.currentTime)); 1")
        browser.click(".card[data-index='0']")
        browser.wait("document.querySelectorAll('#now-phrases button').length === 3")
        browser.wait("document.querySelectorAll('#curve .phrase-band').length === 3")
        browser.wait("seeks.length > 0", timeout=10)
        browser.evaluate("seeks = []")
        browser.click("#now-phrases button:nth-child(2)")  # play the second phrase from its own start
        browser.wait(f"seeks.some(t => Math.abs(t - {phrase['start']}) < 0.1)", timeout=10)


def test_info_says_whether_the_model_finds_phrases(client, plpnet_index):
    from vidseek.serve.app import create_app

    assert client.get("/api/info").json()["phrases"] is False  # ExCL
    with TestClient(create_app(plpnet_index, hosts=HOSTS, refresh_s=0)) as c:
        assert c.get("/api/info").json()["phrases"] is True
        moments = c.get("/api/search", params={"q": "person opens door", "phrases": True, "min_score": 0}).json()
        assert moments["moments"] and all(len(m["phrases"]) == 3 for m in moments["moments"])


def test_a_backend_this_machine_lacks_fails_the_start_not_every_search(library, invoke):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has onnxruntime's CUDA provider")
    r = invoke("serve", "--index", library / "index", "--port", 0, "--backend", "onnxruntime-cuda")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "no CUDAExecutionProvider" in r.output, r.output
