"""ExCL and PLPNet: losses against hand-computed values, masking, checkpoints, and learning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toy_features import make_toy
from vidseek.engine.decode import decode_start_end, expected_span, topk_index_spans
from vidseek.trainer.checkpoint import load_run
from vidseek.trainer.data.dataset import MomentDataset
from vidseek.trainer.models import EXCL_NAMES, MODEL_NAMES, build_model, config_for
from vidseek.trainer.models.excl import ExCL, ExCLConfig, expected_times
from vidseek.trainer.models.layers import BiLSTM
from vidseek.trainer.models.plpnet import attention_loss, feature_margin_loss, phrase_loss
from vidseek.trainer.train import TrainConfig, predict, score, train
from vidseek.trainer.words import LearnedWords

SMALL = {"video_hidden": 32, "query_hidden": 32, "span_hidden": 32, "mlp_hidden": 64, "dropout": 0.1}
SMALL_PLP = {"dim": 64, "dropout": 0.1}


def small(name: str) -> dict:
    return SMALL_PLP if name == "plpnet" else SMALL


# ---- names and configs ---------------------------------------------------------------------


def test_all_twelve_excl_variants_are_registered():
    assert len(EXCL_NAMES) == 12 and len(set(EXCL_NAMES)) == 12
    cfg = config_for("excl-reg-1c")
    assert (cfg.objective, cfg.video_lstm, cfg.predictor) == ("reg", False, "c")
    assert cfg.name == "excl-reg-1c"
    # paper sizes are the defaults
    d = ExCLConfig()
    assert (d.video_hidden, d.span_hidden, d.query_hidden, d.mlp_hidden, d.dropout) == (256, 128, 256, 256, 0.5)


def test_unknown_model_and_setting_are_clear_errors():
    with pytest.raises(ValueError, match="choose one of"):
        config_for("excl-xyz")
    with pytest.raises(ValueError, match="no setting hidden"):
        config_for("plpnet", hidden=3)


# ---- layers --------------------------------------------------------------------------------


def test_bilstm_is_exact_on_padded_sequences():
    """Padding must not change any valid step, nor the sentence state (no packed sequences needed)."""
    torch.manual_seed(0)
    lstm = BiLSTM(5, 7, num_layers=2).eval()
    x = torch.randn(1, 4, 5)
    out1, sent1 = lstm(x, torch.ones(1, 4, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 3, 5)], 1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    out2, sent2 = lstm(padded, mask)
    torch.testing.assert_close(out2[:, :4], out1)
    torch.testing.assert_close(sent2, sent1)
    assert out2[:, 4:].abs().max() == 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parts_compose_and_respect_the_video_mask(name):
    """forward == head(encode_video, encode_text); padded steps get no start/end mass."""
    torch.manual_seed(0)
    model = build_model(name, video_dim=6, word_dim=5, **small(name)).eval()
    video, words = torch.randn(2, 10, 6), torch.randn(2, 4, 5)
    vmask = torch.tensor([[True] * 10, [True] * 7 + [False] * 3])
    wmask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2])
    out = model(video, vmask, words, wmask)
    parts = model.head(model.encode_video(video, vmask), vmask, model.encode_text(words, wmask))
    key = "span" if name == "plpnet" else "start_logits"
    torch.testing.assert_close(out[key], parts[key])
    if name == "plpnet":
        assert out["frame_att"][1, 7:].max() < 1e-6
        assert out["word_att"].shape == (2, 3, 4) and out["word_att"][1, :, 2:].max() < 1e-6
        torch.testing.assert_close(out["word_att"].sum(-1), torch.ones(2, 3))
        assert out["phrase_spans"].shape == (2, 3, 2)
    else:
        assert torch.softmax(out["start_logits"], -1)[1, 7:].max() < 1e-6


# ---- losses against hand-computed values ----------------------------------------------------


def test_excl_clf_loss_is_eq1():
    model = ExCL(ExCLConfig(objective="clf", video_dim=2, word_dim=2, video_hidden=2, query_hidden=2, span_hidden=2))
    out = {"start_logits": torch.tensor([[0.0, math.log(3.0)]]), "end_logits": torch.tensor([[0.0, 0.0]])}
    batch = {"start_idx": torch.tensor([1]), "end_idx": torch.tensor([0])}
    loss, _ = model.loss(out, batch)
    # -log P_start(1) - log P_end(0) = -log(3/4) - log(1/2)
    assert float(loss) == pytest.approx(-math.log(0.75) - math.log(0.5), abs=1e-6)


def test_excl_reg_expected_times_by_hand():
    """T=2: P_start = (1/4, 3/4); P_end|start=0 = (1/2, 1/2), P_end|start=1 = (0, 1).
    t_s = 1/4*0 + 3/4*1/2 = 3/8; t_e = 1/4*(1/2*1/2 + 1/2*1) + 3/4*1 = 3/16 + 3/4 = 15/16."""
    s = torch.tensor([[0.0, math.log(3.0)]])
    e = torch.tensor([[0.0, 0.0]])
    ts, te = expected_times(s, e, torch.ones(1, 2, dtype=torch.bool))
    assert float(ts) == pytest.approx(3 / 8) and float(te) == pytest.approx(15 / 16)
    assert expected_span(s[0].numpy(), e[0].numpy()) == pytest.approx((3 / 8, 15 / 16))
    model = ExCL(ExCLConfig(objective="reg", video_dim=2, word_dim=2, video_hidden=2, query_hidden=2, span_hidden=2))
    loss, _ = model.loss({"start_logits": s, "end_logits": e},
                         {"span": torch.tensor([[0.5, 1.0]]), "video_mask": torch.ones(1, 2, dtype=torch.bool)})
    assert float(loss) == pytest.approx(1 / 8 + 1 / 16)


def test_expected_times_torch_and_numpy_agree():
    torch.manual_seed(1)
    s, e = torch.randn(3, 9), torch.randn(3, 9)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[2, 6:] = False
    s, e = s.masked_fill(~mask, -1e4), e.masked_fill(~mask, -1e4)
    ts, te = expected_times(s, e, mask)
    for i, n in enumerate([9, 9, 6]):
        assert expected_span(s[i].numpy(), e[i].numpy(), n) == pytest.approx((float(ts[i]), float(te[i])), abs=1e-5)


def test_phrase_loss_by_hand():
    # A = [[1, 0], [0, 1]] (two words, two phrases each on one word): AᵀA = I -> ||I - 0.3 I||² = 2 * 0.49
    alpha = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert float(phrase_loss(alpha, 0.3)) == pytest.approx(0.98)
    # both phrases on the same word: AᵀA = [[1, 1], [1, 1]] -> 2 * 0.49 + 2 * 1
    assert float(phrase_loss(torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]), 0.3)) == pytest.approx(2.98)


def test_attention_loss_by_hand():
    beta = torch.tensor([[0.5, 0.25, 0.25]])
    tags = torch.tensor([[1.0, 0.0, 0.0]])
    expected = -(math.log(0.5) + 2 * math.log(0.75)) / 3
    assert float(attention_loss(beta, tags, torch.ones(1, 3, dtype=torch.bool))) == pytest.approx(expected, rel=1e-5)
    # masked frames do not count
    mask = torch.tensor([[True, True, False]])
    assert float(attention_loss(beta, tags, mask)) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2, rel=1e-5)


def test_feature_margin_loss_by_hand():
    m_q = torch.tensor([[1.0, 0.2], [0.2, 1.0]])
    m_v = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    # off-diagonal |0.9 - 0.2| - 0.1 = 0.6 twice, diagonal 0 -> mean 1.2 / 4
    assert float(feature_margin_loss(m_q, m_v, 0.1)) == pytest.approx(0.3)


def test_plpnet_loss_has_all_four_terms():
    torch.manual_seed(0)
    model = build_model("plpnet", video_dim=6, word_dim=5, dim=16, max_len=8, n_phrases=2)
    video = torch.randn(3, 8, 6)
    batch = {"video": video, "video_mask": torch.ones(3, 8, dtype=torch.bool),
             "span": torch.tensor([[0.1, 0.4], [0.5, 0.9], [0.0, 1.0]]), "tags": (torch.rand(3, 8) > 0.5).float()}
    out = model(video, batch["video_mask"], torch.randn(3, 4, 5), torch.ones(3, 4, dtype=torch.bool))
    loss, parts = model.loss(out, batch)
    assert set(parts) == {"reg", "attention", "phrase", "feature"}
    assert all(v > 0 for v in parts.values())
    loss.backward()
    assert model.w_q_att.weight.grad.abs().sum() > 0  # phrase generation receives gradient


@pytest.mark.parametrize("guide_norm", [False, True])
def test_plpnet_phrase_attention_survives_a_large_guide_only_with_its_norm(guide_norm):
    """A phrase guide g grown large saturates eq. 3's tanh: the attention falls flat over the words and
    no gradient flows back to the words' side. ``guide_norm`` keeps g in the tanh's working range."""
    torch.manual_seed(0)
    model = build_model("plpnet", video_dim=6, word_dim=5, dim=16, max_len=8, n_phrases=2, guide_norm=guide_norm)
    with torch.no_grad():
        model.w_g.weight.mul_(5000.0)  # what training did to two phrases of the built-in bundle's first model
    text = model.encode_text(torch.randn(2, 6, 5), torch.ones(2, 6, dtype=torch.bool))
    spread = text["word_att"].std(-1)  # 0: the same weight on every word
    text["word_att"][:, :, 0].sum().backward()
    grad = float(model.w_w_alpha.weight.grad.abs().sum())  # what can teach a phrase which words to attend to
    if guide_norm:
        assert grad > 0.1
    else:
        assert (spread < 1e-5).all() and grad < 1e-3


# ---- decoding properties ----------------------------------------------------------------------

logits = st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=40)


@given(logits, st.data())
@settings(max_examples=200, deadline=None)
def test_decoded_spans_are_ordered_and_in_bounds(start, data):
    end = data.draw(st.lists(st.floats(-20, 20, allow_nan=False), min_size=len(start), max_size=len(start)))
    s, e = np.array(start), np.array(end)
    n = len(s)
    for i, j, p in topk_index_spans(s, e, n, k=5):
        assert 0 <= i <= j < n and 0 <= p <= 1
    # the top span is the argmax of S_start(i) + S_end(j) over i <= j
    i, j, _ = topk_index_spans(s, e, n, k=1)[0]
    best = max((s[a] + e[b], a, b) for a in range(n) for b in range(a, n))
    assert s[i] + e[j] == pytest.approx(best[0])
    ts, te = expected_span(s, e, n)
    assert 0 <= ts <= te <= 1 + 1e-9
    duration = data.draw(st.floats(0.5, 500))
    for objective in ("clf", "reg"):
        for a, b, score_ in decode_start_end(s, e, duration, n, objective, k=3):
            assert 0 <= a <= b <= duration + 1e-3


# ---- checkpoints ------------------------------------------------------------------------------


def _toy_train(name, tmp_path, steps, n_videos=120):
    tr, store = make_toy(n_videos, seed=0)
    featurizer = LearnedWords.build([s.query for s in tr], dim=16)
    cfg = TrainConfig(epochs=1000, batch_size=16, lr=3e-3, length=32, patience=1000, max_steps=steps, sampler="random")
    best = train(name, tr, tr, store, featurizer, tmp_path / name, cfg, small(name), progress=False)
    return best, tr, store


def test_checkpoint_rebuilds_the_model_without_the_command_line(tmp_path):
    best, tr, store = _toy_train("excl-reg-2c", tmp_path, steps=20, n_videos=20)
    run_dir = tmp_path / "excl-reg-2c"
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["model"]["name"] == "excl-reg-2c"
    assert cfg["model"]["config"]["video_hidden"] == 32 and cfg["data"]["feature_dim"] == 16
    run = load_run(run_dir)
    data = MomentDataset(tr, store, 32)
    m = score(predict(run.model, run.name, run.featurizer, data), data.samples)
    assert m == pytest.approx(best["metrics"])  # the saved weights are the best epoch's
    cfg["format_version"] = 99
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="format version 99"):
        load_run(run_dir)


# ---- every variant learns ----------------------------------------------------------------------

# Optimiser steps per variant: the MLP predictors (a) learn the query-video conjunction more slowly.
STEPS = {name: (1000 if name.endswith("a") else 400) for name in MODEL_NAMES}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_variant_learns_the_planted_signal(name, tmp_path):
    torch.set_num_threads(1)
    best, _, store = _toy_train(name, tmp_path, STEPS[name])
    assert best["metrics"]["R1@0.5"] >= 90.0, best
    held_out, store2 = make_toy(40, seed=1)
    store.update(store2)
    run = load_run(tmp_path / name)
    data = MomentDataset(held_out, store, 32)
    m = score(predict(run.model, run.name, run.featurizer, data), data.samples)
    # chance: a random span of the right length anywhere in the video
    rng = np.random.default_rng(0)
    rand = []
    for s in held_out:
        w = s.windows[0][1] - s.windows[0][0]
        a = rng.uniform(0, s.duration - w)
        rand.append({"pred_relevant_windows": [[a, a + w, 1.0]]})
    chance = score(rand, held_out)["R1@0.5"]
    assert m["R1@0.5"] >= max(50.0, chance + 30.0), (m, chance)


# ---- retrieval embedding ----------------------------------------------------------------------


def test_retrieval_loss_by_hand():
    """Two videos, T=3, E=2; ground truth at step 0 (item 0) and step 2 (item 1); temperature 0.5.

    Across videos: logits [[2, 0], [0, 2]] -> CE = log(1 + e^-2) each.
    Within a video: the positive scores 2, the two other 1-step windows score 0 -> CE = log(1 + 2e^-2).
    """
    from vidseek.trainer.models.layers import retrieval_loss

    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    steps = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    start, end, mask = torch.tensor([0, 2]), torch.tensor([0, 2]), torch.ones(2, 3, dtype=torch.bool)
    e = math.exp(-2)
    loss = retrieval_loss(text, steps, start, end, mask, ["a", "b"], temperature=0.5)
    assert float(loss) == pytest.approx(math.log(1 + e) + math.log(1 + 2 * e), rel=1e-5)
    # items of the same video are not each other's negatives
    loss = retrieval_loss(text, steps, start, end, mask, ["a", "a"], temperature=0.5)
    assert float(loss) == pytest.approx(math.log(1 + 2 * e), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["excl-clf-2b", "plpnet"])
def test_retrieval_embedding_finds_the_queried_concept_across_a_library(name, tmp_path):
    """After joint training, the best window over all held-out videos shows what the query names."""
    from toy_features import CONCEPTS
    from vidseek.spans import seconds_to_index

    torch.set_num_threads(1)
    tr, store = make_toy(120, seed=0)
    te, store2 = make_toy(40, seed=1)
    store.update(store2)
    featurizer = LearnedWords.build([s.query for s in tr], dim=16)
    cfg = TrainConfig(epochs=1000, batch_size=16, lr=3e-3, length=32, patience=1000, max_steps=400, sampler="random")
    train(name, tr, tr, store, featurizer, tmp_path, cfg, {**small(name), "retrieval_dim": 32}, progress=False)
    run = load_run(tmp_path)
    data = MomentDataset(te, store, 32)
    vids = sorted({s.vid for s in te})
    with torch.no_grad():
        video = torch.from_numpy(np.stack([data.video(v) for v in vids]))
        steps = run.model.retrieval.embed_steps(run.model.encode_video(video, torch.ones(video.shape[:2], dtype=torch.bool)))
        w = run.featurizer.encode([s.query for s in te])
        text = run.model.encode_text(w.words, w.mask)["retrieval"]
    width, stride = 6, 2
    starts = list(range(0, 32 - width + 1, stride))
    windows = torch.nn.functional.normalize(torch.stack([steps[:, a:a + width].mean(1) for a in starts], 1), dim=-1)
    concept = lambda q: next(c for c in CONCEPTS if c in q.split())  # noqa: E731
    events = {}
    for s in te:
        events.setdefault(concept(s.query), []).append((s.vid, seconds_to_index(s.windows[0], s.duration, 32)))
    hits = 0
    for i, s in enumerate(te):
        v, k = divmod(int(torch.einsum("e,vke->vk", text[i], windows).argmax()), len(starts))
        a0, a1 = starts[k], starts[k] + width - 1
        hits += any(vid == vids[v] and a0 <= b and a1 >= a for vid, (a, b) in events[concept(s.query)])
    # chance: a random window shows a given concept about 2/6 * 30% of the time
    assert hits / len(te) >= 0.8, hits / len(te)


def test_plpnet_regression_loss_is_smooth_l1_by_hand():
    """Eq. 14 on normalised times: smooth L1 (beta 1) of start and end errors, summed, mean over the batch."""
    torch.manual_seed(0)
    model = build_model("plpnet", video_dim=4, word_dim=3, dim=8, max_len=4, n_phrases=1,
                        w_attention=0.0, w_phrase=0.0, w_feature=0.0)
    out = {"span": torch.tensor([[0.1, 0.9], [0.5, 0.5]]), "frame_att": torch.full((2, 4), 0.25),
           "word_att": torch.ones(2, 1, 1), "phrase_words": torch.ones(2, 1, 3), "phrase_frame_att": torch.full((2, 1, 4), 0.25)}
    batch = {"span": torch.tensor([[0.0, 1.0], [0.5, 0.0]]), "tags": torch.zeros(2, 4),
             "video_mask": torch.ones(2, 4, dtype=torch.bool), "video": torch.ones(2, 4, 4)}
    _, parts = model.loss(out, batch)
    # item 0: 0.5*0.1^2 + 0.5*0.1^2 = 0.01; item 1: 0 + 0.5*0.5^2 = 0.125 -> mean 0.0675
    assert parts["reg"] == pytest.approx(0.0675)


# ---- native-rate crops --------------------------------------------------------------------------


def test_crops_hold_the_target_at_the_native_rate():
    samples, store = make_toy(30, seed=3)
    data = MomentDataset(samples, store, 24, crop="random", seed=0)
    for i in range(len(samples)):
        item, s = data[i], samples[i]
        total = len(store[s.vid])
        n = int(item["mask"].sum())
        assert n == min(24, total) and item["video"].shape == (24, 16) and not item["video"][n:].any()
        assert item["duration"] == pytest.approx(n * s.duration / total)  # native rate kept
        # the target, mapped back to video seconds, is the ground truth (clipped to the crop)
        start = item["offset"] + item["span"][0] * item["duration"]
        end = item["offset"] + item["span"][1] * item["duration"]
        gs, ge = s.windows[0]
        assert start == pytest.approx(max(gs, item["offset"]), abs=1e-4)
        assert end == pytest.approx(min(ge, item["offset"] + item["duration"]), abs=1e-4)
        offset_steps = item["offset"] * total / s.duration
        np.testing.assert_allclose(item["video"][:n], store[s.vid][round(offset_steps):round(offset_steps) + n])


def test_crop_training_predicts_in_video_seconds(tmp_path):
    torch.set_num_threads(1)
    tr, store = make_toy(80, seed=0)
    featurizer = LearnedWords.build([s.query for s in tr], dim=16)
    cfg = TrainConfig(epochs=1000, batch_size=16, lr=3e-3, length=32, patience=1000, max_steps=250, sampler="random", crop=True)
    best = train("excl-clf-2b", tr, tr, store, featurizer, tmp_path, cfg, small("excl-clf-2b"), progress=False)
    assert best["metrics"]["R1@0.5"] >= 80.0, best  # scored against the ground truth in video seconds
