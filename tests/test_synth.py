"""The synthetic world (`vidseek synth`): determinism, formats, decodability, and annotations that
agree with what is drawn. Seeded and offline; tiny 10 s videos at 160x120."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vidseek.cli.synth_cmd import synth_cmd
from vidseek.synth import Renderer, SynthConfig, annotate, contact_sheet, make_video
from vidseek.synth.camera import ROOM, Camera
from vidseek.synth.language import PREDICATES, Meaning, windows
from vidseek.synth.splits import HELDOUT
from vidseek.synth.writer import encode_video, video_entry, write_annotations

TINY = SynthConfig(min_duration=10.0, max_duration=10.0)
SEED = 0  # seed 0, videos 0-3: open_door, close_door, pick_up/put_down, walk in/out; train, val and test


def _run(args: list[str]):
    res = CliRunner().invoke(synth_cmd, args)
    return res


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    res = _run([str(out), "--videos", "4", "--seed", str(SEED), "--min-duration", "10", "--max-duration", "10",
                "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _all_records(out: Path) -> list[dict]:
    return [r for s in ("train", "val", "test") for r in _read_jsonl(out / f"{s}.jsonl")]


def _decode(path: Path) -> np.ndarray:
    import decord

    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def _lum(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def _find(verb: str, seed: int = 5, n: int = 80, config: SynthConfig = TINY):
    """(video, action) pairs of ``verb`` among the plans of the first n videos (no rendering)."""
    out = []
    for i in range(n):
        v = make_video(seed, i, config)
        out += [(v, a) for a in v.timeline.actions if a.verb == verb]
    assert out, f"no {verb} in {n} videos"
    return out


# -- files and formats ------------------------------------------------------------------------------


def test_writes_every_file_in_the_documented_formats(dataset: Path):
    for name in ("train", "val", "test", "comp_train", "comp_val", "comp_test", "comp_test_seen"):
        assert (dataset / f"{name}.jsonl").exists()
        assert (dataset / f"charades_{name}.txt").exists()
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["seed"] == SEED and manifest["renderer_version"].startswith("synth-")
    assert {tuple(c) for c in manifest["heldout_combinations"]} == set(HELDOUT)
    assert len(manifest["videos"]) == 4
    assert {v["split"] for v in manifest["videos"]} == {"train", "val", "test"}
    for v in manifest["videos"]:
        assert (dataset / v["file"]).exists() and v["file"] == f"videos/{v['vid']}.mp4"
        assert v["n_frames"] == round(v["duration"] * v["fps"]) and (v["width"], v["height"]) == (160, 120)
        assert 3 <= len(v["actions"]) <= 10
        for a in v["actions"]:
            assert {"actor", "verb", "object", "attributes", "start", "end"} <= set(a)
            assert 0.0 <= a["start"] < a["end"] <= v["duration"] and 1.0 - 1e-3 <= a["end"] - a["start"] <= 12.0


def test_phrase_queries_are_the_verb_object_phrases_of_the_test_sentences(dataset: Path):
    sentences = {r["qid"]: r for r in _read_jsonl(dataset / "test.jsonl")}
    phrases = _read_jsonl(dataset / "phrase_test.jsonl")
    assert phrases and json.loads((dataset / "manifest.json").read_text())["files"]["phrase_test"] == "phrase_test.jsonl"
    videos = {v["vid"]: v for v in json.loads((dataset / "manifest.json").read_text())["videos"]}
    for p in phrases:
        s = sentences[p["sentence"]]
        kept = [w for part in s["phrases"] if part["role"] in ("verb", "object")
                for w in s["query"].split()[slice(*part["words"])]]
        assert p["query"] == " ".join(kept) and len(p["query"].split()) < len(s["query"].split())
        assert all(w in p["relevant_windows"] for w in s["relevant_windows"])  # the sentence's moments and ...
        verbs = {a["verb"] for a in videos[s["vid"]]["actions"] if [a["start"], a["end"]] in p["relevant_windows"]}
        assert len(verbs) == 1  # ... the other moments of the same action only


def test_jsonl_records_follow_the_trainer_contract(dataset: Path):
    manifest = json.loads((dataset / "manifest.json").read_text())
    durations = {v["vid"]: v["duration"] for v in manifest["videos"]}
    records = _all_records(dataset)
    assert records and len({r["qid"] for r in records}) == len(records)
    for r in records:
        test = r["vid"] in {v["vid"] for v in manifest["videos"] if v["split"] == "test"}
        assert set(r) == {"qid", "query", "vid", "duration", "relevant_windows", "phrases"} | ({"library_windows"} if test else set())
        assert r["duration"] == durations[r["vid"]]
        assert r["relevant_windows"] and all(0.0 <= s < e <= r["duration"] for s, e in r["relevant_windows"])
        words = r["query"].split()
        covered = []
        for p in r["phrases"]:
            s, e = p["words"]
            assert 0 <= s < e <= len(words) and " ".join(words[s:e]) == p["text"]
            covered += list(range(s, e))
        assert sorted(covered) == list(range(len(words)))  # phrases partition the sentence
        assert {p["role"] for p in r["phrases"]} >= {"subject", "verb"}


def test_every_action_has_at_least_three_distinct_sentences(dataset: Path):
    manifest = json.loads((dataset / "manifest.json").read_text())
    records = _all_records(dataset)
    for v in manifest["videos"]:
        for a in v["actions"]:
            window = [a["start"], a["end"]]
            hits = {r["query"] for r in records if r["vid"] == v["vid"] and window in r["relevant_windows"]}
            assert len(hits) >= 3, (v["vid"], a)
    assert all(len(p) >= 3 for p in PREDICATES.values()) and len(PREDICATES) >= 12


def test_charades_sta_files_and_durations(dataset: Path):
    durations = json.loads((dataset / "charades.json").read_text())
    lines = (dataset / "charades_train.txt").read_text().splitlines()
    assert lines
    for line in lines:
        head, sentence = line.split("##")
        vid, s, e = head.split()
        assert sentence and 0.0 <= float(s) < float(e) <= durations[vid]["duration"] + 0.01


def test_plans_stay_inside_the_video_for_any_length():
    config = SynthConfig(min_duration=8.0, max_duration=300.0)
    for i in range(40):
        video = make_video(3, i, config)
        acts = video.timeline.actions
        assert 3 <= len(acts) <= 10
        assert all(0.0 <= a.start < a.end <= video.duration and 1.0 - 1e-3 <= a.end - a.start <= 12.0 for a in acts)
        for m in video.timeline.motions:  # every person is accounted for from 0 to the end
            assert m[0].t0 == 0.0 and abs(m[-1].t1 - video.duration) < 1e-6
            assert all(abs(x.t1 - y.t0) < 1e-6 for x, y in zip(m, m[1:]))
        for r in annotate(video):
            assert all(0.0 <= s < e <= video.duration for s, e in r["relevant_windows"])


# -- decoding and determinism -----------------------------------------------------------------------


def test_videos_decode_with_decord_and_pyav_to_the_expected_frame_count(dataset: Path):
    import av
    import decord

    for v in json.loads((dataset / "manifest.json").read_text())["videos"]:
        vr = decord.VideoReader(str(dataset / v["file"]))
        assert len(vr) == v["n_frames"] and vr[0].shape == (120, 160, 3)
        assert abs(vr.get_avg_fps() - 15.0) < 1e-6
        with av.open(str(dataset / v["file"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == v["n_frames"]


def test_same_seed_gives_same_annotations_and_decoded_frames_and_fewer_videos_are_a_prefix(dataset, tmp_path):
    res = _run([str(tmp_path), "--videos", "2", "--seed", str(SEED), "--min-duration", "10",
                "--max-duration", "10", "--no-progress"])
    assert res.exit_code == 0, res.output
    again = {r["qid"]: r for r in _all_records(tmp_path)}
    prefix = {"syn0_00000", "syn0_00001"}
    first = {r["qid"]: r for r in _all_records(dataset) if r["vid"] in prefix}
    for r in first.values():  # a test sentence's library is the world: here only the first two videos
        if "library_windows" in r:
            r["library_windows"] = {v: w for v, w in r["library_windows"].items() if v in prefix}
    assert again == first
    for vid in ("syn0_00000", "syn0_00001"):
        assert np.array_equal(_decode(tmp_path / "videos" / f"{vid}.mp4"), _decode(dataset / "videos" / f"{vid}.mp4"))
    other = make_video(SEED + 1, 0, TINY)
    assert [a for a in other.timeline.actions] != [a for a in make_video(SEED, 0, TINY).timeline.actions]


def test_mkv_and_webm_containers_decode(tmp_path):
    import decord

    video = make_video(1, 0, TINY)
    frames = [Renderer(video).frame(i) for i in range(12)]
    for container in ("mkv", "webm"):
        path = tmp_path / f"x.{container}"
        assert encode_video(path, frames, 15.0, 160, 120, container) == 12
        assert len(decord.VideoReader(str(path))) == 12


# -- annotations agree with the world ---------------------------------------------------------------


def test_a_sentence_lists_every_window_it_describes():
    long = SynthConfig(min_duration=40.0, max_duration=90.0)
    video = next(v for v, _ in _find("open_door", config=long)
                 if sum(a.verb == "open_door" for a in v.timeline.actions) >= 2)
    opens = [[a.start, a.end] for a in video.timeline.actions if a.verb == "open_door"]
    assert windows(Meaning("open_door", "door"), video.timeline.actions, video.scene) == sorted(opens)
    for r in annotate(video):
        verbs = {p["text"] for p in r["phrases"] if p["role"] == "verb"}
        plain = r["phrases"][0]["text"] in ("person", "someone", "a person", "the person", "somebody")
        if plain and verbs & {"opens", "pulls", "swings"} and "door" in r["query"]:
            assert r["relevant_windows"] == sorted(opens), r
    one = video.scene.people[video.timeline.actions[0].actor]
    mine = windows(Meaning("open_door", "door", shirt=one.shirt_name), video.timeline.actions, video.scene)
    assert mine == sorted([a.start, a.end] for a in video.timeline.actions
                          if a.verb == "open_door" and a.actor == one.pid)


def test_test_sentences_list_every_video_of_the_world_where_they_are_true(tmp_path):
    out = tmp_path / "lib"
    res = _run([str(out), "--videos", "12", "--seed", "3", "--min-duration", "8", "--max-duration", "8",
                "--split", "0,0,1", "--no-progress"])
    assert res.exit_code == 0, res.output
    videos = json.loads((out / "manifest.json").read_text())["videos"]
    records = _read_jsonl(out / "test.jsonl")
    shared = 0
    for r in records:
        own = make_video(3, int(r["vid"].rsplit("_", 1)[1]), SynthConfig(min_duration=8.0, max_duration=8.0,
                                                                           split=(0.0, 0.0, 1.0)))
        meaning = next(q for q in annotate(own) if q["query"] == r["query"])["meaning"]
        truth = {v["vid"]: sorted([a["start"], a["end"]] for a in v["actions"] if meaning.holds(a)) for v in videos}
        assert r["library_windows"] == {vid: w for vid, w in truth.items() if w}  # every such video, no other
        assert r["library_windows"][r["vid"]] == r["relevant_windows"]
        shared += len(r["library_windows"]) > 1
    assert shared > len(records) / 4  # "someone opens the door" is true in many rooms


def test_door_open_fraction_rises_only_inside_open_door_windows():
    for video, act in _find("open_door")[:6]:
        r = Renderer(video)
        door_windows = [(a.start, a.end) for a in video.timeline.actions if a.obj == "door"]
        inside = [r.state(t).door for t in np.linspace(act.start, act.end, 25)]
        assert inside[0] == 0.0 and inside[-1] == 1.0 and np.all(np.diff(inside) >= 0)
        outside = [t for t in np.arange(0, video.duration, 0.1) if not any(s <= t <= e for s, e in door_windows)]
        values = [r.state(t).door for t in outside]
        assert set(values) <= {0.0, 1.0}


def _doorway_dark_fraction(frame: np.ndarray, video) -> float:
    """Share of the doorway showing the dark hallway: 0 when the leaf covers it."""
    cam, door = Camera.for_size(video.width, video.height), video.scene.door
    x0, y0 = cam.project(door.center_x - 0.4 * door.width, ROOM.back, door.height * 0.9)
    x1, y1 = cam.project(door.center_x + 0.4 * door.width, ROOM.back, door.height * 0.1)
    lum = _lum(frame)
    region = lum[int(y0):int(y1), int(x0):int(x1)]
    return float((region < 0.3 * np.median(lum)).mean())


def test_doorway_pixels_open_up_during_open_door_in_the_decoded_video(dataset: Path):
    manifest = json.loads((dataset / "manifest.json").read_text())
    entry = next(v for v in manifest["videos"] if any(a["verb"] == "open_door" for a in v["actions"]))
    act = next(a for a in entry["actions"] if a["verb"] == "open_door")
    frames = _decode(dataset / entry["file"])
    video = make_video(SEED, entry["index"], TINY)
    before = _doorway_dark_fraction(frames[int(act["start"] * 15) - 1], video)
    after = _doorway_dark_fraction(frames[min(int(act["end"] * 15) + 1, len(frames) - 1)], video)
    assert before < 0.05 and after > before + 0.2
    for video, a in _find("close_door")[:3]:  # and close again
        r = Renderer(video)
        assert _doorway_dark_fraction(r.frame_at(a.start), video) > 0.2
        assert _doorway_dark_fraction(r.frame_at(a.end), video) < 0.05


@pytest.mark.parametrize("verb, brighter", [("turn_on_light", True), ("turn_off_light", False)])
def test_the_light_changes_global_brightness_inside_its_window(verb, brighter):
    for video, act in _find(verb)[:4]:
        r = Renderer(video)
        before = _lum(r.frame_at(act.start)).mean()
        after = _lum(r.frame_at(act.end)).mean()
        ratio = after / before
        assert (ratio > 1.3) if brighter else (ratio < 1 / 1.3), (video.vid, ratio)
        mid = [r.state(t).light for t in (act.start, act.end)]
        assert mid == ([0.0, 1.0] if brighter else [1.0, 0.0])


def test_boxes_are_lifted_and_carried_by_the_person():
    for video, act in [(v, a) for v, a in _find("pick_up") if v.scene.props[a.prop].kind == "box"][:4]:
        r = Renderer(video)
        box = video.scene.props[act.prop]
        start = next(p for p in r.state(act.start).props if p.prop.pid == box.pid)
        end_state = r.state(act.end)
        end = next(p for p in end_state.props if p.prop.pid == box.pid)
        holder = next(p for p in end_state.people if p.person.pid == act.actor)
        assert start.on_floor and not end.on_floor
        assert end.center[2] > box.size  # lifted off the floor
        assert abs(end.center[0] - holder.pose.x) < 0.5  # in front of the holder


def test_a_thrown_ball_flies_in_an_arc_and_lands():
    for video, act in _find("throw")[:4]:
        r = Renderer(video)
        ts = np.append(np.linspace(act.start, act.end, 60), act.end + 0.005)  # times are rounded to 1 ms
        path = [next(p for p in r.state(t).props if p.prop.pid == act.prop) for t in ts]
        heights = np.array([p.center[2] for p in path])
        top = int(np.argmax(heights))
        assert heights[top] > heights[0] + 0.2 and 0 < top < len(ts) - 1  # rises above the hand, comes down
        assert not path[top].on_floor
        assert path[-1].on_floor and abs(heights[-1] - video.scene.props[act.prop].size / 2) < 1e-6
        assert abs(path[-1].center[0] - path[0].center[0]) > 0.8  # it went somewhere


def test_people_are_articulated():
    video, walk = _find("walk_in")[0]
    r = Renderer(video)
    knees = [next(p for p in r.state(t).people if p.person.pid == walk.actor).skeleton.knees[0][0]
             - next(p for p in r.state(t).people if p.person.pid == walk.actor).pose.x
             for t in np.linspace(walk.start + 0.3, walk.end - 0.3, 20)]
    assert np.ptp(knees) > 0.1  # legs swing while walking
    video, wave = _find("wave")[0]
    p = next(p for p in Renderer(video).state((wave.start + wave.end) / 2).people if p.person.pid == wave.actor)
    assert p.skeleton.hands[0][1] > p.skeleton.head[1]  # the waving hand is above the head
    video, sit = _find("sit_down")[0]
    r = Renderer(video)
    hips = [next(p for p in r.state(t).people if p.person.pid == sit.actor).pose.hip_h for t in (sit.start, sit.end)]
    assert hips[1] < hips[0] - 0.2 and abs(hips[1] - video.scene.chair.seat_h) < 0.15


# -- splits ---------------------------------------------------------------------------------------------

HELD_VERBS = {"picks up", "lifts", "grabs", "takes", "puts down", "sets down", "places", "lowers"}


def _has_heldout(r: dict) -> bool:
    q = r["query"]
    verbs = {p["text"] for p in r["phrases"] if p["role"] == "verb"}
    objects = " ".join(p["text"] for p in r["phrases"] if p["role"] == "object")
    return (bool(verbs & HELD_VERBS) and objects.endswith("ball")) or any(
        f"{a} {n}" in q for a, n in (("red", "box"), ("blue", "ball"), ("green", "shirt")))


def test_compositional_split_holds_combinations_out_of_training(tmp_path):
    entries, records = [], []
    for i in range(40):
        v = make_video(7, i, TINY)
        entries.append(video_entry(v, v.vid + ".mp4", v.n_frames))
        records += annotate(v)
    write_annotations(tmp_path, entries, records)
    comp = {n: _read_jsonl(tmp_path / f"{n}.jsonl") for n in ("comp_train", "comp_val", "comp_test", "comp_test_seen")}
    assert comp["comp_train"] and comp["comp_test"] and comp["comp_test_seen"]
    assert not any(_has_heldout(r) for r in comp["comp_train"] + comp["comp_val"] + comp["comp_test_seen"])
    assert all(_has_heldout(r) for r in comp["comp_test"])
    split_of = {e["vid"]: e["split"] for e in entries}
    assert {split_of[r["vid"]] for r in comp["comp_train"]} == {"train"}
    assert {split_of[r["vid"]] for r in comp["comp_test"] + comp["comp_test_seen"]} == {"test"}
    standard = [r for s in ("train", "val", "test") for r in _read_jsonl(tmp_path / f"{s}.jsonl")]
    assert len(standard) == len(records)


# -- command line and extras --------------------------------------------------------------------------


@pytest.mark.parametrize("args, expect", [
    (["--videos", "0"], "at least 1"),
    (["--videos", "1", "--size", "160by120"], "WIDTHxHEIGHT"),
    (["--videos", "1", "--size", "161x120"], "even"),
    (["--videos", "1", "--min-duration", "30", "--max-duration", "20"], "below min_duration"),
    (["--videos", "1", "--split", "0.5,0.6,0.1"], "sum"),
])
def test_user_errors_are_clear_messages_not_tracebacks(tmp_path, args, expect):
    res = _run([str(tmp_path / "out")] + args)
    assert res.exit_code == 2 and expect in res.output and "Traceback" not in res.output


def test_unwritable_out_dir_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = _run([str(blocker / "out"), "--videos", "1"])
    assert res.exit_code == 1 and "cannot write to OUT_DIR" in res.output


def test_contact_sheet_is_a_png(tmp_path):
    path = tmp_path / "sheet.png"
    sheet = contact_sheet(path, seed=0, n_videos=1, frames_per_video=2, config=TINY)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == sheet.shape[1] and sheet.shape[0] > 240


def test_synth_needs_no_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from vidseek.cli.synth_cmd import synth_cmd\n"
            "from vidseek.synth import make_video, Renderer\n"
            "Renderer(make_video(0, 0)).frame(0)\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_opposite_in_the_paraphrase_bank_names_where_the_opposite_happens():
    from vidseek.synth.paraphrase import OPPOSITE_OF, bank

    entries = [{"vid": "v1", "split": "test", "duration": 30.0, "actions": [
        {"verb": "walk_in", "object": None, "attributes": {}, "start": 1.0, "end": 3.0},
        {"verb": "walk_out", "object": None, "attributes": {}, "start": 20.0, "end": 22.0},
        {"verb": "open_door", "object": "door", "attributes": {}, "start": 5.0, "end": 7.0},
        {"verb": "close_door", "object": "door", "attributes": {}, "start": 9.0, "end": 10.0},
        {"verb": "sit_down", "object": "chair", "attributes": {}, "start": 11.0, "end": 12.0}]}]
    opposites = {r["verb"]: r["opposite_windows"] for r in bank(entries, 0) if r["kind"] == "opposite"}
    assert opposites == {"walk_in": [[20.0, 22.0]], "walk_out": [[1.0, 3.0]], "open_door": [[9.0, 10.0]],
                         "close_door": [[5.0, 7.0]]}  # sit_down: no stand_up in the video, no opposite record
    assert OPPOSITE_OF["sit_down"] == "stand_up"
