"""Annotation readers: exact counts on the real files, format details, and the bad-data policy."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from vidseek.trainer.data.annotations import (
    DATASETS,
    AnnotationError,
    AnnotationWarning,
    Sample,
    read_activitynet,
    read_annotations,
    read_charades_sta,
    read_jsonl,
    read_tacos,
)

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
ANN = ASSETS / "annotations"
needs_assets = pytest.mark.skipif(not ANN.is_dir(), reason=f"real annotation files not found at {ANN}")

# (dataset, file, queries in the file (README), kept, clipped, skipped by reason)
REAL_FILES = [
    ("charades-sta", "charades_sta/charades_sta_train.txt", 12408, 12408, 1802, {}),
    ("charades-sta", "charades_sta/charades_sta_test.txt", 3720, 3720, 562, {}),
    ("tacos", "tacos/train.json", 9790, 9790, 43, {}),
    ("tacos", "tacos/val.json", 4436, 4436, 0, {}),
    ("tacos", "tacos/test.json", 4001, 4001, 5, {}),
    ("activitynet", "activitynet_captions/train.json", 37421, 37417, 261,
     {"zero_length": 2, "start_after_end": 2}),
    ("activitynet", "activitynet_captions/val_1.json", 17505, 17505, 134, {}),
    ("activitynet", "activitynet_captions/val_2.json", 17031, 17031, 111, {}),
    ("qvhighlights", "qvhighlights/highlight_train_release.jsonl", 7218, 7218, 0, {}),
    ("qvhighlights", "qvhighlights/highlight_val_release.jsonl", 1550, 1550, 0, {}),
]


def _read_quietly(*args, **kwargs):
    """Read and return (samples, recorded warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = read_annotations(*args, **kwargs)
    return samples, [w for w in caught if issubclass(w.category, AnnotationWarning)]


@needs_assets
@pytest.mark.parametrize(
    "dataset,name,queries,kept,clipped,skipped", REAL_FILES, ids=[f[1] for f in REAL_FILES]
)
def test_real_file_counts(dataset, name, queries, kept, clipped, skipped):
    samples, caught = _read_quietly(ANN / name, dataset)
    report = samples.report
    assert report.queries == queries
    assert (report.kept, report.clipped, dict(report.skipped)) == (kept, clipped, skipped)
    assert len(samples) == kept == queries - report.n_skipped
    assert len(caught) == (1 if skipped else 0)
    assert len({s.qid for s in samples}) == len(samples)
    assert all(0 <= a < b <= s.duration for s in samples for a, b in s.windows)
    assert all(s.query == s.query.strip() and s.query for s in samples)


@needs_assets
def test_charades_first_line_by_hand():
    s = read_charades_sta(ANN / "charades_sta/charades_sta_train.txt")[0]
    # line 1: "AO8RW 0.0 6.9##a person is putting a book on a shelf."; charades.json: AO8RW 33.67 s
    query = "a person is putting a book on a shelf."
    assert s == Sample("charades_sta_train:1", "AO8RW", query, 33.67, ((0.0, 6.9),))


@needs_assets
def test_tacos_frames_to_seconds_by_hand():
    s = read_tacos(ANN / "tacos/test.json")[0]
    # "s30-d52.avi": fps 29.4, num_frames 7346, first timestamp [141, 354], "She took out kiwi"
    assert (s.qid, s.vid, s.query) == ("test:0", "s30-d52", "She took out kiwi")
    assert s.duration == pytest.approx(249.8639456, abs=1e-6)  # 7346 / 29.4
    assert s.windows[0] == pytest.approx((4.7959184, 12.0408163), abs=1e-6)  # 141 / 29.4, 354 / 29.4


@needs_assets
def test_activitynet_strips_sentences_and_keeps_seconds():
    s = read_activitynet(ANN / "activitynet_captions/val_2.json")[1]
    assert s.vid == "v_uqiMw7tQ1Cc" and s.duration == 55.15
    assert s.query.startswith("One man is holding onto a rope")  # leading space removed
    assert s.windows == ((4.14, 33.36),)


# ------------------------------------------------------------------ Charades-STA and PLPNet's variant


def _charades(tmp_path: Path, lines: list[str], durations: dict | None = None, name: str = "ann.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if durations is not None:
        table = {vid: {"duration": seconds} for vid, seconds in durations.items()}
        (tmp_path / "charades.json").write_text(json.dumps(table))
    return path


def test_plpnet_four_field_variant(tmp_path):
    # The format of PLPNet's data/charades/annotations/charades_sta_train.txt: VID START END CLASS##sentence
    path = _charades(
        tmp_path,
        [
            "AO8RW 0.0 6.9 112##a person is putting a book on a shelf.",
            "Y6R7T 20.8 30.0 628##person begins to play on a phone.",
            "Y6R7T 7.3 17.3 154##the person pours some water into the glass.",
        ],
        {"AO8RW": 33.67, "Y6R7T": 30.0},
    )
    samples = read_charades_sta(path)
    assert samples.report.clusters == (112, 628, 154)
    assert [s.windows for s in samples] == [((0.0, 6.9),), ((20.8, 30.0),), ((7.3, 17.3),)]
    assert samples[2].query == "the person pours some water into the glass."
    three_field = _charades(tmp_path, ["AO8RW 0.0 6.9##a person is putting a book on a shelf."], name="b.txt")
    assert read_charades_sta(three_field).report.clusters is None


def test_plpnet_variant_clusters_follow_skips(tmp_path):
    path = _charades(tmp_path, ["V 1 2 5##ok.", "V 3 2 6##backwards.", "V 4 5 7##ok too."], {"V": 10.0})
    with pytest.warns(AnnotationWarning, match="1 start_after_end"):
        samples = read_charades_sta(path)
    assert samples.report.clusters == (5, 7)
    assert [s.qid for s in samples] == ["ann:1", "ann:3"]


def test_charades_mixed_field_counts_is_an_error(tmp_path):
    path = _charades(tmp_path, ["V 1 2 5##four fields.", "V 3 4##three fields."], {"V": 10.0})
    with pytest.raises(AnnotationError, match=r"ann\.txt:2: line has 3 fields"):
        read_charades_sta(path)


def test_durations_override(tmp_path):
    path = _charades(tmp_path, ["V 1.0 9.0##a person runs."], {"V": 20.0})
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"V": {"duration": 8.0}}))
    assert read_charades_sta(path)[0].duration == 20.0  # charades.json next to the file
    overridden = read_annotations(path, "charades-sta", durations=other)
    assert overridden[0].duration == 8.0
    assert overridden[0].windows == ((1.0, 8.0),) and overridden.report.clipped == 1


def test_missing_durations_file_says_what_to_pass(tmp_path):
    path = _charades(tmp_path, ["V 1 2##x."])
    with pytest.raises(FileNotFoundError, match="pass durations="):
        read_charades_sta(path)


def test_video_missing_from_durations_is_an_error(tmp_path):
    path = _charades(tmp_path, ["V 1 2##x.", "W 1 2##y."], {"V": 10.0})
    with pytest.raises(AnnotationError, match=r"1 video\(s\) have no duration .*e\.g\. W"):
        read_charades_sta(path)


@pytest.mark.parametrize(
    "line,match",
    [
        ("V 1 2 a person without separator", r"ann\.txt:2: expected 'VID START END##sentence'"),
        ("V 1##too few fields", r"ann\.txt:2: expected"),
        ("V one 2##bad number", r"ann\.txt:2: start must be a number, got 'one'"),
        ("V 1 2 x##bad class", r"ann\.txt:2: PLPNet class must be an integer"),
        ("V 1 nan##not finite", r"ann\.txt:2: end must be finite"),
    ],
)
def test_charades_malformed_lines_name_file_and_line(tmp_path, line, match):
    path = _charades(tmp_path, ["V 0 1##fine.", line], {"V": 10.0})
    with pytest.raises(AnnotationError, match=match):
        read_charades_sta(path)


def test_skip_and_clip_policy(tmp_path):
    lines = [
        "V 1.0 2.0##kept as is.",
        "V 2.0 12.5##end past the video, clipped.",
        "V -0.5 3.0##negative start, clipped.",
        "V 5.0 4.0##start after end.",
        "V 3.0 3.0##zero length.",
        "V 10.0 12.0##starts when the video ends.",
        "V 1.0 2.0##   ",
        "",  # blank lines are not queries
    ]
    path = _charades(tmp_path, lines, {"V": 10.0})
    with pytest.warns(AnnotationWarning) as caught:
        samples = read_charades_sta(path)
    assert len(caught) == 1  # one summary warning for the file
    report = samples.report
    assert (report.queries, report.kept, report.clipped) == (7, 3, 2)
    assert dict(report.skipped) == {
        "start_after_end": 1,
        "zero_length": 1,
        "starts_after_video": 1,
        "empty_query": 1,
    }
    assert [s.windows for s in samples] == [((1.0, 2.0),), ((2.0, 10.0),), ((0.0, 3.0),)]
    assert "7 queries, kept 3" in str(caught[0].message) and str(path) in str(caught[0].message)


# ------------------------------------------------------------------ ActivityNet and TACoS


def _json(tmp_path: Path, data: dict, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_activitynet_bad_entries(tmp_path):
    ok = {"duration": 10.0, "timestamps": [[0, 5]], "sentences": ["a"]}
    mismatch = _json(tmp_path, {"v_a": ok, "v_b": {"duration": 9.0, "timestamps": [[0, 1]], "sentences": []}})
    with pytest.raises(AnnotationError, match=r"video 'v_b': 1 timestamps but 0 sentences"):
        read_activitynet(mismatch)
    no_duration = _json(tmp_path, {"v_c": {"timestamps": [[0, 1]], "sentences": ["x"]}})
    with pytest.raises(AnnotationError, match=r"video 'v_c': missing key\(s\) \['duration'\]"):
        read_activitynet(no_duration)
    bad_pair = _json(tmp_path, {"v_d": {"duration": 9.0, "timestamps": [[1]], "sentences": ["x"]}})
    with pytest.raises(AnnotationError, match=r"video 'v_d', sentence 0: expected a \[start, end\] pair"):
        read_activitynet(bad_pair)


def test_activitynet_plpnet_class_key_and_qids(tmp_path):
    data = {
        "v_a": {
            "duration": 10.0, "timestamps": [[0, 5], [5, 10.01]], "sentences": [" a", "b"], "class": [3, 1]
        },
        "v_b": {"duration": 0.0, "timestamps": [[0, 1]], "sentences": ["c"], "class": [2]},
    }
    with pytest.warns(AnnotationWarning, match="1 bad_duration"):
        samples = read_activitynet(_json(tmp_path, data, "train.json"))
    assert [s.qid for s in samples] == ["train:0", "train:1"]
    assert samples.report.clusters == (3, 1)
    assert samples[1].windows == ((5.0, 10.0),) and samples.report.clipped == 1


def test_tacos_bad_fps_and_avi_suffix(tmp_path):
    good = {"x.avi": {"timestamps": [[30, 60]], "sentences": ["s"], "fps": 30, "num_frames": 300}}
    s = read_tacos(_json(tmp_path, good))[0]
    assert (s.vid, s.duration, s.windows) == ("x", 10.0, ((1.0, 2.0),))
    bad = {"y.avi": {"timestamps": [[30, 60]], "sentences": ["s"], "fps": 0, "num_frames": 300}}
    with pytest.raises(AnnotationError, match=r"video 'y.avi': fps must be > 0"):
        read_tacos(_json(tmp_path, bad))


def test_not_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="broken.json: not valid JSON"):
        read_tacos(path)


# ------------------------------------------------------------------ jsonl


def _jsonl(tmp_path: Path, records: list[dict], name: str = "q.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_phrases_and_synthesised_qid(tmp_path):
    record = {
        "query": "a man opens the door",
        "vid": "v1",
        "duration": 30,
        "relevant_windows": [[2, 4], [10, 12]],
        "phrases": [
            {"role": "subject", "text": "a man", "words": [0, 2]},
            {"role": "verb", "text": "opens", "words": [2, 3]},
        ],
    }
    samples = read_jsonl(_jsonl(tmp_path, [record, {**record, "qid": 7}]))
    first, second = samples
    assert (first.qid, second.qid) == ("q:1", 7)  # a qid keeps its type: predict writes it back as it was
    assert first.windows == ((2.0, 4.0), (10.0, 12.0)) and first.duration == 30.0
    assert first.phrases[0] == {"role": "subject", "text": "a man", "words": [0, 2]}
    words = first.query.split()
    assert [" ".join(words[slice(*p["words"])]) for p in first.phrases] == ["a man", "opens"]


@pytest.mark.parametrize(
    "change,match",
    [
        (
            {"phrases": [{"role": "verb", "text": "x", "words": [3, 9]}]},
            r"q\.jsonl:1: phrase 0 words \[3, 9\) must lie",
        ),
        ({"phrases": [{"role": "verb", "words": [0, 1]}]}, r"q\.jsonl:1: phrase 0 must be"),
        ({"relevant_windows": [[1, 2, 3]]}, r"q\.jsonl:1: expected a \[start, end\] pair"),
        ({"duration": "long"}, r"q\.jsonl:1: duration must be a number"),
    ],
)
def test_jsonl_malformed_records_name_the_line(tmp_path, change, match):
    record = {"qid": 1, "query": "a man opens the door", "vid": "v", "duration": 30}
    record["relevant_windows"] = [[2, 4]]
    with pytest.raises(AnnotationError, match=match):
        read_jsonl(_jsonl(tmp_path, [{**record, **change}]))


def test_jsonl_missing_key_and_duplicate_qid(tmp_path):
    with pytest.raises(AnnotationError, match=r"q\.jsonl:1: missing key\(s\) \['duration'\]"):
        read_jsonl(_jsonl(tmp_path, [{"qid": 1, "query": "q", "vid": "v", "relevant_windows": [[0, 1]]}]))
    record = {"qid": 1, "query": "q", "vid": "v", "duration": 5, "relevant_windows": [[0, 1]]}
    with pytest.raises(AnnotationError, match=r"q\.jsonl:2: qid 1 appears more than once"):
        read_jsonl(_jsonl(tmp_path, [record, record]))


def test_jsonl_one_bad_window_skips_the_sample(tmp_path):
    base = {"query": "q", "vid": "v", "duration": 5}
    records = [
        {**base, "qid": 1, "relevant_windows": [[0, 1], [4, 3]]},
        {**base, "qid": 2, "relevant_windows": []},
        {**base, "qid": 3, "relevant_windows": [[0, 1], [2, 6]]},
    ]
    with pytest.warns(AnnotationWarning):
        samples = read_jsonl(_jsonl(tmp_path, records))
    assert [s.qid for s in samples] == [3] and samples[0].windows == ((0.0, 1.0), (2.0, 5.0))
    assert dict(samples.report.skipped) == {"start_after_end": 1, "no_window": 1}
    assert (samples.report.queries, samples.report.clipped) == (3, 1)


# ------------------------------------------------------------------ dispatch and Sample


def test_read_annotations_rejects_unknown_dataset():
    expected = r"unknown dataset 'charades'; expected one of charades-sta, .*did you mean 'charades-sta'"
    with pytest.raises(ValueError, match=expected):
        read_annotations("x", "charades")
    assert DATASETS == ("charades-sta", "activitynet", "tacos", "qvhighlights", "jsonl")


def test_read_annotations_dispatch_and_durations_only_for_charades(tmp_path):
    record = {"qid": 1, "query": "q", "vid": "v", "duration": 5, "relevant_windows": [[0, 1]]}
    path = _jsonl(tmp_path, [record])
    assert read_annotations(path, "qvhighlights") == read_annotations(path, "jsonl") == read_jsonl(path)
    with pytest.raises(ValueError, match="durations= is only used by 'charades-sta'"):
        read_annotations(path, "jsonl", durations=path)


def test_sample_rejects_windows_outside_the_video():
    with pytest.raises(ValueError, match="expected at least one window"):
        Sample("q", "v", "x", 10.0, ())
    with pytest.raises(ValueError, match=r"window \(2.0, 11.0\) is not inside \[0, 10.0\]"):
        Sample("q", "v", "x", 10.0, ((2.0, 11.0),))
