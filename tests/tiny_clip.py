"""A tiny randomly initialised CLIP saved like a downloaded checkpoint, built offline for the tests
(``tiny_clip``), with its CLIP-compatible BPE tokenizer (``tiny_clip_tokenizer``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidseek.engine.preprocess import CLIP_SPEC
from vidseek.trainer.encoders import quiet_transformers


# A few sentences in the register of the synthetic world, to train the tiny CLIP's BPE merges.
TINY_SENTENCES = (
    "a person opens the door", "someone picks up a cup from the table", "the man sits down on a chair",
    "a woman walks to the window and looks outside", "the person puts the book back on the shelf",
    "person turns on the light", "someone closes the laptop and stands up", "a person drinks from a glass",
    "the girl throws a ball", "the person waves at the camera, then leaves the room",
)


def _bytes_to_unicode() -> list[str]:
    """The 256 printable characters standing for the bytes 0..255, in GPT-2/CLIP order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def tiny_clip_tokenizer(sentences: tuple[str, ...] = TINY_SENTENCES, vocab_size: int = 800):
    """A CLIP-compatible byte-level BPE tokenizer (transformers CLIPTokenizer) with merges learned on ``sentences``.

    The vocabulary is laid out like CLIP's: the 256 byte characters, the same with ``</w>``, the learned
    merges, then ``<|startoftext|>`` and ``<|endoftext|>`` last (the end-of-text id is the largest).
    """
    from tokenizers import Tokenizer, models, trainers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer()  # an empty CLIP tokenizer: normaliser and pre-tokenizer to train with
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.normalizer = template.backend_tokenizer.normalizer
    bpe.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    byte_chars = _bytes_to_unicode()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, initial_alphabet=byte_chars,
                                  end_of_word_suffix="</w>", show_progress=False, special_tokens=[])
    bpe.train_from_iterator(list(sentences), trainer)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_clip(path: str | Path, seed: int = 0, image_size: int = 224, patch_size: int = 32, hidden: int = 32,
              layers: int = 2, heads: int = 4, projection_dim: int = 16) -> Path:
    """Save a tiny randomly initialised CLIP (ViT image tower, the ViT-B/32 layout at toy width) to ``path``.

    The folder looks like a downloaded checkpoint: config.json, model.safetensors, tokenizer files
    (tokenizer.json included) and preprocessor_config.json, so ``load_clip(path)`` runs the real loading path.
    """
    from transformers import CLIPConfig, CLIPModel

    path = Path(path)
    tokenizer = tiny_clip_tokenizer()
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=77,
                         projection_dim=projection_dim, **ids),
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=image_size, patch_size=patch_size,
                           projection_dim=projection_dim),
        projection_dim=projection_dim,
    )
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        CLIPModel(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
    preprocessor = {  # the fields of openai/clip-vit-base-patch32's file (resample 3 = bicubic)
        "crop_size": {"height": image_size, "width": image_size}, "do_center_crop": True, "do_normalize": True,
        "do_resize": True, "image_processor_type": "CLIPImageProcessor", "image_mean": list(CLIP_SPEC.mean),
        "image_std": list(CLIP_SPEC.std), "resample": 3, "size": {"shortest_edge": image_size},
    }
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return path


def tiny_siglip(path: str | Path, seed: int = 0, image_size: int = 64, patch_size: int = 16, hidden: int = 32,
                layers: int = 2, heads: int = 4, fast_tokenizer: bool = False) -> Path:
    """Save a tiny randomly initialised SigLIP to ``path``, like a downloaded SigLIP checkpoint.

    Its tokenizer is a SentencePiece Unigram model trained on TINY_SENTENCES with SigLIP's special
    pieces (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2), saved as spiece.model for transformers'
    SiglipTokenizer, as google/siglip-* ship it (no tokenizer.json). With ``fast_tokenizer`` the same
    pieces are saved as a tokenizer.json instead, as SigLIP 2's fixed-resolution checkpoints ship theirs.
    """
    import io

    import sentencepiece as spm
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel, SiglipTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(TINY_SENTENCES) * 5), model_writer=model, vocab_size=120, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        add_dummy_prefix=False, normalization_rule_name="nmt_nfkc_cf", hard_vocab_limit=False, minloglevel=2)
    spiece = path / "spiece.model"
    spiece.write_bytes(model.getvalue())
    with quiet_transformers():
        tokenizer = SiglipTokenizer(str(spiece), model_max_length=64)
        if fast_tokenizer:
            from vidseek.export.clip import siglip_tokenizer

            backend = siglip_tokenizer(tokenizer)
            spiece.unlink()
            tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="</s>", eos_token="</s>",
                                                unk_token="<unk>", model_max_length=64)
        tokenizer.save_pretrained(path)
        config = SiglipConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                             num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=64,
                             projection_size=hidden, pad_token_id=1, eos_token_id=1, bos_token_id=None),
            vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, image_size=image_size, patch_size=patch_size),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SiglipModel(config)
            with torch.no_grad():  # SigLIP's trained temperature and bias, not the random init
                model.logit_scale.fill_(2.3)
                model.logit_bias.fill_(-10.0)
            model.save_pretrained(path)
    preprocessor = {  # the fields of google/siglip-base-patch16-224's file: stretched, no crop, mean/std 0.5
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_processor_type": "SiglipImageProcessor",
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3,
        "size": {"height": image_size, "width": image_size},
    }
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return path
