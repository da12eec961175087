"""Word features: static GloVe/word2vec files, learned vocabularies, the offline MiniLM tower."""

from __future__ import annotations

import numpy as np
import pytest

from vidseek.trainer.words import LearnedWords, StaticWords, TransformerWords, load_featurizer, make_featurizer, save_featurizer


def test_static_vectors_word2vec_header_unknown_words_and_round_trip(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("3 2\nopens 1 0\ndoor 0 1\nunused 5 5\n")
    feats = make_featurizer(f"static:{path}", ["Person opens the door"])
    assert feats.dim == 2 and set(feats.vectors) == {"opens", "door"}  # only the run's vocabulary is kept
    batch = feats.encode(["opens the door", "door"])
    assert batch.words.shape == (2, 3, 2) and batch.mask.tolist() == [[True] * 3, [True, False, False]]
    np.testing.assert_array_equal(batch.words[0].numpy(), [[1, 0], [0, 0], [0, 1]])  # "the" is unknown -> zeros
    spec = save_featurizer(feats, tmp_path)
    again = load_featurizer(spec, tmp_path)
    np.testing.assert_array_equal(again.encode(["opens the door"]).words.numpy(), batch.words[:1].numpy())


def test_static_vectors_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="word vector file not found"):
        StaticWords(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1\n")
    with pytest.raises(ValueError, match="bad.txt:2: vector of 1 values, expected 2"):
        StaticWords(bad)
    with pytest.raises(ValueError, match="unknown word features"):
        make_featurizer("glove", [])


def test_learned_vocabulary_round_trip(tmp_path):
    feats = LearnedWords.build(["a person opens the door", "the person sits"], dim=8)
    batch = feats.encode(["the person jumps"])
    assert batch.words.dtype.is_floating_point is False
    assert batch.words[0, 2].item() == 1  # unknown word -> <unk>
    again = load_featurizer(save_featurizer(feats, tmp_path), tmp_path)
    assert again.vocab == feats.vocab


def test_offline_minilm_token_features(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    feats = TransformerWords("all-MiniLM-L6-v2", max_words=8)
    batch = feats.encode(["person opens the door", "a man sits down on the red chair near the table"])
    assert feats.dim == 384 and batch.words.shape == (2, 8, 384)
    assert batch.tokens[0] == ["[CLS]", "person", "opens", "the", "door", "[SEP]"]
    assert batch.mask[1].all()  # truncated to max_words
    a, b = batch.words[0, 2].numpy(), feats.encode(["person opens the door"]).words[0, 2].numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)  # cached features are reused
