"""SigLIP through ``clip:``: a tiny random SigLIP saved like a downloaded checkpoint (SentencePiece
spiece.model as google/siglip-* ship it, or a tokenizer.json as SigLIP 2 ships it), loaded, exported
as a zero-shot bundle whose tokenizer and graphs match transformers, indexed and searched without torch.

The model is random, so the tests check the machinery (preprocessing, tokenization, padding, the
pooled embeddings, the relevance from SigLIP's own scale and bias), not what it finds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from blocking import run_blocked

pytest.importorskip("sentencepiece", reason="SigLIP's SentencePiece tokenizer needs the sentencepiece package")

ODD_QUERIES = ["A person OPENS the door!", "someone, picks up  a cup.", "the man's chair", "  wave\t ",
               "qwzx blorf", "Ünïcode café", "it's 5 o'clock", "—dash— “quotes”",
               "\x1copens\x1d the\x1e\x1fdoor\x1c"]  # separators Python's \s counts as white space, Rust's not


@pytest.fixture(scope="module", params=["spiece", "tokenizer.json"])
def siglip(request, tmp_path_factory, invoke):
    """A tiny SigLIP checkpoint and its zero-shot bundle, exported by the CLI offline."""
    from tiny_clip import tiny_siglip

    root = tmp_path_factory.mktemp("siglip")
    model = tiny_siglip(root / "tiny-siglip", fast_tokenizer=request.param == "tokenizer.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        r = invoke("export", "--clip", model, root / "bundle")
    assert r.exit_code == 0, r.output
    return {"model": model, "bundle": root / "bundle", "root": root}


def test_load_siglip_gives_its_towers_spec_and_fixed_length_tokens(siglip):
    import torch
    from transformers import SiglipModel

    from vidseek.trainer.encoders import load_clip

    parts = load_clip(siglip["model"])
    assert parts.kind == "siglip" and parts.fixed_length
    assert (parts.spec.width, parts.spec.height, parts.spec.resize) == (64, 64, "stretch")  # SigLIP does not crop
    assert parts.spec.mean == parts.spec.std == (0.5, 0.5, 0.5)
    assert parts.image.dim == parts.text.dim == 32
    assert parts.logit_scale == pytest.approx(np.exp(2.3), rel=1e-5) and parts.logit_bias == pytest.approx(-10.0)
    enc = parts.tokenize(["someone waves", "a person opens the door"], max_length=64)
    assert enc["input_ids"].shape == (2, 64)  # padded to SigLIP's whole context, as it was trained
    reference = SiglipModel.from_pretrained(siglip["model"]).eval()
    with torch.no_grad():
        want = reference.get_text_features(input_ids=enc["input_ids"])
        want = getattr(want, "pooler_output", want)
        got = parts.text(enc["input_ids"], enc["attention_mask"])[1]
        torch.testing.assert_close(got, want)
        pixels = torch.randn(3, 3, 64, 64)
        want = reference.get_image_features(pixel_values=pixels)
        torch.testing.assert_close(parts.image(pixels), getattr(want, "pooler_output", want))


def test_siglip_bundle_tokenizes_like_transformers_and_pads_to_the_context(siglip):
    from transformers import AutoTokenizer

    from vidseek.engine.bundle import load_bundle
    from vidseek.engine.grounder import Grounder

    bundle = load_bundle(siglip["bundle"])
    meta = bundle.meta
    assert meta["model"]["kind"] == "siglip" and meta["words"]["max_words"] == 64
    assert meta["features"]["frame_encoder"]["spec"]["resize"] == "stretch"
    assert max(meta["parity"].values()) < 1e-4 and "SigLIP" in meta["domain"]["note"]
    g = Grounder(bundle)
    reference = AutoTokenizer.from_pretrained(siglip["model"])
    feeds, _ = g.tokenize(ODD_QUERIES)
    assert feeds["input_ids"].shape == (len(ODD_QUERIES), 64)
    for i, query in enumerate(ODD_QUERIES):
        want = reference(query, padding="max_length", max_length=64, truncation=True)["input_ids"]
        assert feeds["input_ids"][i].tolist() == want, query
    assert g._unknown == {2}  # SentencePiece's <unk>, which a Unigram model keeps only as an id
    from vidseek.engine.grounder import QueryError

    with pytest.raises(QueryError, match="empty"):
        g.tokenize(["?!"])  # SigLIP drops punctuation: nothing is left to read


def test_siglip_relevance_is_its_own_sigmoid(siglip):
    from vidseek.engine.calibration import Calibration

    meta = json.loads((siglip["bundle"] / "bundle.json").read_text())
    calibration = Calibration.from_meta(meta)
    scale = np.exp(2.3)
    signals = np.array([[0.2, 0.3, 0.05, 1.0], [0.9, 0.9, 0.3, 1.0]])
    want = 1 / (1 + np.exp(-(scale * signals[:, :2].mean(axis=1) - 10.0)))
    np.testing.assert_allclose(calibration.relevance(signals), want, rtol=1e-6)
    assert calibration.threshold == 0.1 and "not fitted" in calibration.fitted_on["default"]


SEARCH = """
import sys
from vidseek.cli.main import cli
cli.main(["search", "a person opens the door", "--index", sys.argv[1], "--json", "--min-score", "0", "--top-k", "4"])
"""


def test_a_library_indexed_with_clip_siglip_is_searched_without_torch(siglip, synth_library, tmp_path, invoke,
                                                                        monkeypatch):
    monkeypatch.setenv("VIDSEEK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    index = tmp_path / "idx"
    r = invoke("index", synth_library / "videos", "--index", index, "--model", f"clip:{siglip['model']}",
               "--no-progress")
    assert r.exit_code == 0 and "indexed 3" in r.output, r.output
    assert "exporting" in r.output  # the one-time export says what it does, with its steps
    r = run_blocked(SEARCH, str(index))
    assert r.returncode == 0, r.stderr
    moments = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert 1 <= len(moments) <= 4 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    for m in moments:
        assert 0 <= m["score"] <= 1 and 0 <= m["start"] < m["end"]
