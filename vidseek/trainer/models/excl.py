"""ExCL: extractive clip localization (Ghosh et al., 2019), all 12 variants of its Table 1.

Name: ``excl-{clf|reg}-{1|2}{a|b|c}``
  clf / reg   training objective (softmax + NLL on start/end, or L1 on expected times)
  1 / 2       video encoder absent (raw features) or a BiLSTM
  a / b / c   span predictor: MLP, tied LSTM, conditioned LSTM

The model is cut into three parts that export keeps apart:
  encode_video(video, mask)        -> per-step video states       (depends on the video only)
  encode_text(words, mask)         -> sentence embedding h^T       (depends on the query only)
  head(video_states, mask, text)   -> start/end scores             (fusion and span prediction)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidseek.trainer.models.layers import NEG, BiLSTM, RetrievalHead, retrieval_loss

NAME_RE = re.compile(r"^excl-(clf|reg)-([12])([abc])$")


@dataclass
class ExCLConfig:
    objective: str = "clf"  # "clf": softmax + NLL on start/end indices; "reg": L1 on expected normalised times
    video_lstm: bool = True  # variant 2 (video BiLSTM) when True, variant 1 (raw features) when False
    predictor: str = "b"  # "a" MLP, "b" tied LSTM, "c" conditioned LSTM
    video_dim: int = 1024  # input visual feature size (read from the feature files)
    word_dim: int = 300  # input word feature size
    vocab_size: int = 0  # > 0: learned word embeddings (word_dim each) over this vocabulary
    video_hidden: int = 256  # video BiLSTM units per direction (paper: 256)
    query_hidden: int = 256  # query BiLSTM units per direction (paper: 256)
    span_hidden: int = 128  # span-predictor BiLSTM units per direction (paper: 128)
    mlp_hidden: int = 256  # MLP span-predictor hidden units, tanh (paper: 256)
    dropout: float = 0.5  # on every LSTM's outputs during training (paper: 0.5)
    retrieval_dim: int = 0  # > 0: a joint text-video embedding of this size for library search (not in the paper)
    w_retrieval: float = 1.0  # weight of the retrieval InfoNCE loss when retrieval_dim > 0

    @classmethod
    def from_name(cls, name: str, **kw) -> "ExCLConfig":
        m = NAME_RE.match(name)
        if not m:
            raise ValueError(f"not an ExCL model name: {name!r}; expected excl-{{clf|reg}}-{{1|2}}{{a|b|c}}")
        return cls(objective=m[1], video_lstm=m[2] == "2", predictor=m[3], **kw)

    @property
    def name(self) -> str:
        return f"excl-{self.objective}-{2 if self.video_lstm else 1}{self.predictor}"


def _mlp(size_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(size_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))


class ExCL(nn.Module):
    def __init__(self, cfg: ExCLConfig):
        super().__init__()
        if cfg.objective not in ("clf", "reg") or cfg.predictor not in ("a", "b", "c"):
            raise ValueError(f"bad ExCL config: objective={cfg.objective!r} predictor={cfg.predictor!r}")
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=0) if cfg.vocab_size else None
        self.query_lstm = BiLSTM(cfg.word_dim, cfg.query_hidden, dropout=cfg.dropout)
        self.video_lstm = BiLSTM(cfg.video_dim, cfg.video_hidden, dropout=cfg.dropout) if cfg.video_lstm else None
        fused = self.video_out_dim + 2 * cfg.query_hidden  # [h^V_t; h^T]
        if cfg.predictor == "a":
            self.mlp_start, self.mlp_end = _mlp(fused, cfg.mlp_hidden), _mlp(fused, cfg.mlp_hidden)
        elif cfg.predictor == "b":
            self.span_lstm = BiLSTM(fused, cfg.span_hidden, dropout=cfg.dropout)
            size = 2 * cfg.span_hidden + fused  # [h^P_t; h^V_t; h^T]
            self.mlp_start, self.mlp_end = _mlp(size, cfg.mlp_hidden), _mlp(size, cfg.mlp_hidden)
        else:
            self.lstm_start = BiLSTM(fused, cfg.span_hidden, dropout=cfg.dropout)
            self.lstm_end = BiLSTM(2 * cfg.span_hidden, cfg.span_hidden, dropout=cfg.dropout)
            size = 2 * cfg.span_hidden + fused
            self.w_start, self.w_end = nn.Linear(size, 1), nn.Linear(size, 1)  # eqs. 16-17
        self.retrieval = RetrievalHead(2 * cfg.query_hidden, self.video_out_dim, cfg.retrieval_dim) if cfg.retrieval_dim else None

    @property
    def video_out_dim(self) -> int:
        return 2 * self.cfg.video_hidden if self.cfg.video_lstm else self.cfg.video_dim

    # ---- the three exportable parts -------------------------------------------------------
    def encode_video(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """video (B, T, Dv), mask (B, T) bool -> h^V (B, T, Hv)."""
        if self.video_lstm is None:  # variant 1: the features themselves (the paper drops out LSTM outputs only)
            return video * mask[..., None].to(video.dtype)
        return self.video_lstm(video, mask)[0]

    def encode_text(self, words: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """words (B, M, Dw) features, or (B, M) token ids with learned embeddings -> {"sentence": h^T (B, 2Hq)}."""
        if self.embedding is not None:
            words = self.embedding(words)
        _, sentence = self.query_lstm(words, mask)
        out = {"sentence": sentence}
        if self.retrieval is not None:
            out["retrieval"] = self.retrieval.embed_text(sentence)
        return out

    def head(self, video: torch.Tensor, mask: torch.Tensor, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """h^V (B, T, Hv), mask (B, T), text -> {"start_logits", "end_logits"} (B, T), NEG at padding."""
        h_t = text["sentence"][:, None, :].expand(-1, video.shape[1], -1)
        x = torch.cat([video, h_t], -1)  # (B, T, Hv + 2Hq)
        p = self.cfg.predictor
        if p == "a":
            s, e = self.mlp_start(x), self.mlp_end(x)
        elif p == "b":
            z = torch.cat([self.span_lstm(x, mask)[0], x], -1)
            s, e = self.mlp_start(z), self.mlp_end(z)
        else:
            h0 = self.lstm_start(x, mask)[0]
            h1 = self.lstm_end(h0, mask)[0]
            s, e = self.w_start(torch.cat([h0, x], -1)), self.w_end(torch.cat([h1, x], -1))
        return {"start_logits": s[..., 0].masked_fill(~mask, NEG), "end_logits": e[..., 0].masked_fill(~mask, NEG)}

    def forward(self, video, video_mask, words, word_mask) -> dict[str, torch.Tensor]:
        states, text = self.encode_video(video, video_mask), self.encode_text(words, word_mask)
        out = self.head(states, video_mask, text)
        if self.retrieval is not None:
            out.update(retrieval=text["retrieval"], retrieval_steps=self.retrieval.embed_steps(states))
        return out

    # ---- training ------------------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """clf: eq. 1 (NLL of the ground-truth start and end steps); reg: L1 on normalised times."""
        if self.cfg.objective == "clf":
            loss = F.cross_entropy(out["start_logits"], batch["start_idx"]) + F.cross_entropy(out["end_logits"], batch["end_idx"])
            parts = {"nll": loss.item()}
        else:
            ts, te = expected_times(out["start_logits"], out["end_logits"], batch["video_mask"])
            loss = (ts - batch["span"][:, 0]).abs().mean() + (te - batch["span"][:, 1]).abs().mean()
            parts = {"l1": loss.item()}
        if self.retrieval is not None:
            l_ret = retrieval_loss(out["retrieval"], out["retrieval_steps"], batch["start_idx"], batch["end_idx"],
                                   batch["video_mask"], [s.vid for s in batch["samples"]])
            loss = loss + self.cfg.w_retrieval * l_ret
            parts["retrieval"] = l_ret.item()
        return loss, parts


def expected_times(start_logits: torch.Tensor, end_logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable eqs. 5-8: expected normalised start and end times, each (B,).

    Step i starts at i/n and ends at (i+1)/n for a sequence of n valid steps. P_end|start is
    the softmax of the end scores over steps j >= i (masked logits).
    """
    n = mask.sum(1, keepdim=True).to(start_logits.dtype)  # (B, 1)
    steps = torch.arange(mask.shape[1], device=mask.device, dtype=start_logits.dtype)[None, :]
    t_start, t_end = steps / n, (steps + 1) / n  # (B, T)
    p_s = torch.softmax(start_logits, -1)  # padding already holds NEG
    upper = torch.ones(mask.shape[1], mask.shape[1], dtype=torch.bool, device=mask.device).triu()
    allowed = upper[None] & mask[:, None, :]  # (B, i, j)
    p_e = torch.softmax(end_logits[:, None, :].masked_fill(~allowed, NEG), -1)  # (B, i, j)
    ts = (p_s * t_start).sum(1)
    te = (p_s * (p_e * t_end[:, None, :]).sum(-1)).sum(1)
    return ts, te
