"""PLPNet: phrase-level prediction net with contrastive phrase learning (Li et al., 2022).

Section and equation numbers refer to ``shared/papers/plpnet.txt``. Three exportable parts:
  encode_video(video, mask)       eq. 1: V = ReLU(W_seg f) + f_pos               (video only)
  encode_text(words, mask)        §3.2.2: BiLSTM, N phrases with word attention  (query only)
  head(V, mask, text)             §3.2.3-3.2.4: fusion, attention, regression    (both)
Times are normalised to [0, 1] of the (resampled) video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidseek.trainer.models.layers import BiLSTM, RetrievalHead, masked_softmax, retrieval_loss


@dataclass
class PLPNetConfig:
    video_dim: int = 1024  # input segment feature size d_v (read from the feature files)
    word_dim: int = 300  # input word feature size d_0 (word2vec in the paper)
    vocab_size: int = 0  # > 0: learned word embeddings (word_dim each) over this vocabulary
    dim: int = 512  # model dimension d (paper: 512)
    max_len: int = 128  # L, rows of the learnable position table (paper: 128 segments)
    n_phrases: int = 3  # N phrases per query (paper: 3 Charades-STA, 5 ActivityNet)
    text_layers: int = 2  # layers of the text BiLSTM (paper: 2)
    conv_kernel: int = 3  # kernel of the two temporal convolutions in the residual block
    dropout: float = 0.1  # on LSTM outputs and fused features
    phrase_lambda: float = 0.3  # λ in L_phrase = ||AᵀA - λI||²_F (paper: 0.3 Charades, 0.2 ActivityNet)
    feature_margin: float = 0.2  # m0 in L_feature (eq. 19)
    w_attention: float = 1.0  # λ_att
    w_phrase: float = 1.0  # λ_phr
    w_feature: float = 1.0  # λ_feats
    feature_bank: int = 0  # past batches whose (detached) phrases join L_feature's similarity matrices
    # A LayerNorm on the phrase guide g (eq. 2) before eq. 3's tanh (not in the paper). Without it g is
    # unbounded (a ReLU) and grew to ~70x the words' part of the tanh's input in the built-in bundle's
    # training: two of three phrases saturated the tanh, their attention fell flat over every word, and
    # no gradient could bring them back.
    guide_norm: bool = False
    retrieval_dim: int = 0  # > 0: a joint text-video embedding of this size for library search (not in the paper)
    w_retrieval: float = 1.0  # weight of the retrieval InfoNCE loss when retrieval_dim > 0

    name = "plpnet"


class ResBlock(nn.Module):
    """Residual block of two temporal convolutions over (B, T, d)."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2) * m
        h = F.relu(self.conv1(h)) * m
        h = self.conv2(h) * m
        return F.relu(x + h.transpose(1, 2))


class PLPNet(nn.Module):
    def __init__(self, cfg: PLPNetConfig):
        super().__init__()
        self.cfg = cfg
        d, n = cfg.dim, cfg.n_phrases
        # video encoder (eq. 1)
        self.w_seg = nn.Linear(cfg.video_dim, d)
        self.pos = nn.Embedding(cfg.max_len, d)
        # text encoder (§3.2.2, eqs. 2-4)
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=0) if cfg.vocab_size else None
        self.text_lstm = BiLSTM(cfg.word_dim, d // 2, num_layers=cfg.text_layers, dropout=cfg.dropout)
        self.w_q_guide = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(n))  # W_q^(n), eq. 2
        self.w_g = nn.Linear(2 * d, d)
        self.g_norm = nn.LayerNorm(d) if cfg.guide_norm else nn.Identity()
        self.w_g_alpha = nn.Linear(d, d // 2)
        self.w_w_alpha = nn.Linear(d, d // 2)
        self.w_q_att = nn.Linear(d // 2, 1)
        # interaction (§3.2.3, eqs. 6-12)
        self.fuse_v = nn.ModuleList(nn.Linear(d, d) for _ in range(n))  # W_v^(n)
        self.fuse_q = nn.ModuleList(nn.Linear(d, d) for _ in range(n))  # W_q^(n), eq. 6
        self.fuse_m = nn.ModuleList(nn.Linear(d, d) for _ in range(n))  # W_m^(n)
        self.resblock = ResBlock(d, cfg.conv_kernel)
        self.mlp_satt = nn.Linear(d, 1)  # phrase importance γ, eq. 7
        self.w_rq, self.w_rk, self.w_rv = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)  # eq. 9
        self.mlp_fatt = nn.Sequential(nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, 1))  # eqs. 10-11
        self.mlp_reg = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 2))  # eq. 13
        self.drop = nn.Dropout(cfg.dropout)
        self.retrieval = RetrievalHead(d, d, cfg.retrieval_dim) if cfg.retrieval_dim else None
        self._bank: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ---- the three exportable parts -------------------------------------------------------
    def encode_video(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f (B, T, d_v), mask (B, T) -> V (B, T, d). T must not exceed cfg.max_len."""
        steps = torch.arange(video.shape[1], device=video.device).clamp(max=self.cfg.max_len - 1)
        v = F.relu(self.w_seg(video)) + self.pos(steps)[None]
        return v * mask[..., None].to(v.dtype)

    def encode_text(self, words: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """words (B, M, d_0) or ids (B, M), mask (B, M) -> sentence q (B, d), phrases q^(n) (B, N, d),
        word attention α (B, N, M), and phrase_words (B, N, d_0): the input word embeddings pooled by α
        (eq. 15, used by L_feature)."""
        if self.embedding is not None:
            words = self.embedding(words)
        w, q = self.text_lstm(words, mask)  # (B, M, d), (B, d)
        prev = torch.zeros_like(q)
        phrases, alphas = [], []
        for w_q in self.w_q_guide:
            g = self.g_norm(F.relu(self.w_g(torch.cat([w_q(q), prev], -1))))  # eq. 2
            logits = self.w_q_att(torch.tanh(self.w_g_alpha(g)[:, None, :] + self.w_w_alpha(w)))[..., 0]  # eq. 3
            alpha = masked_softmax(logits, mask)  # (B, M)
            prev = (alpha[..., None] * w).sum(1)  # eq. 4
            phrases.append(prev)
            alphas.append(alpha)
        alpha = torch.stack(alphas, 1)  # (B, N, M)
        out = {
            "sentence": q,
            "phrases": torch.stack(phrases, 1),
            "word_att": alpha,
            "phrase_words": torch.einsum("bnm,bmd->bnd", alpha, words),
        }
        if self.retrieval is not None:
            out["retrieval"] = self.retrieval.embed_text(q)
        return out

    def head(self, video: torch.Tensor, mask: torch.Tensor, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """V (B, T, d), mask (B, T), text -> sentence span (B, 2), phrase spans (B, N, 2), frame attention
        β^(t) (B, T) and β^(n) (B, N, T), phrase weights γ (B, N). Spans are normalised start/end."""
        phrases = text["phrases"]  # (B, N, d)
        fused = []
        for n in range(self.cfg.n_phrases):
            m = self.fuse_m[n](self.fuse_v[n](video) * self.fuse_q[n](phrases[:, n])[:, None, :])  # eq. 6
            fused.append(self.resblock(self.drop(m), mask))
        f_n = torch.stack(fused, 1)  # F~^(n): (B, N, T, d)
        gamma = torch.softmax(self.mlp_satt(phrases)[..., 0], -1)  # eq. 7: (B, N)
        f_t = (gamma[:, :, None, None] * f_n).sum(1)  # eq. 8: (B, T, d)
        att = torch.einsum("btd,bsd->bts", self.w_rq(f_t), self.w_rk(f_t)) / math.sqrt(self.cfg.dim)
        att = masked_softmax(att, mask[:, None, :])  # over key steps s
        f_t = f_t + torch.einsum("bts,bsd->btd", att, self.w_rv(f_t))  # eq. 9: global context
        beta_n = masked_softmax(self.mlp_fatt(f_n)[..., 0], mask[:, None, :])  # eq. 10: (B, N, T)
        beta_t = masked_softmax(self.mlp_fatt(f_t)[..., 0], mask)  # eq. 11: (B, T)
        agg_n = torch.einsum("bnt,bntd->bnd", beta_n, f_n)  # eq. 12
        agg_t = torch.einsum("bt,btd->bd", beta_t, f_t)
        return {
            "span": torch.sigmoid(self.mlp_reg(agg_t)),  # eq. 13
            "phrase_spans": torch.sigmoid(self.mlp_reg(agg_n)),
            "frame_att": beta_t,
            "phrase_frame_att": beta_n,
            "phrase_weights": gamma,
        }

    def forward(self, video, video_mask, words, word_mask) -> dict[str, torch.Tensor]:
        text = self.encode_text(words, word_mask)
        states = self.encode_video(video, video_mask)
        out = self.head(states, video_mask, text)
        out.update(word_att=text["word_att"], phrase_words=text["phrase_words"])
        if self.retrieval is not None:
            out.update(retrieval=text["retrieval"], retrieval_steps=self.retrieval.embed_steps(states))
        return out

    # ---- training ------------------------------------------------------------------------
    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """L = L_reg + λ_att L_attention + λ_phr L_phrase + λ_feats L_feature (§3.4)."""
        cfg = self.cfg
        l_reg = F.smooth_l1_loss(out["span"], batch["span"], reduction="none").sum(-1).mean()  # eq. 14
        l_att = attention_loss(out["frame_att"], batch["tags"], batch["video_mask"])  # eq. 20
        l_phr = phrase_loss(out["word_att"], cfg.phrase_lambda)  # eq. 5
        l_feat = self.feature_loss(out, batch["video"])  # eqs. 15-19
        total = l_reg + cfg.w_attention * l_att + cfg.w_phrase * l_phr + cfg.w_feature * l_feat
        parts = {"reg": l_reg.item(), "attention": l_att.item(), "phrase": l_phr.item(), "feature": l_feat.item()}
        if self.retrieval is not None:
            l_ret = retrieval_loss(out["retrieval"], out["retrieval_steps"], batch["start_idx"], batch["end_idx"],
                                   batch["video_mask"], [s.vid for s in batch["samples"]])
            total = total + cfg.w_retrieval * l_ret
            parts["retrieval"] = l_ret.item()
        return total, parts

    def feature_loss(self, out: dict[str, torch.Tensor], video: torch.Tensor) -> torch.Tensor:
        """Eqs. 15-19 over every phrase of the batch (plus `feature_bank` past batches, detached)."""
        q = F.normalize(out["phrase_words"].flatten(0, 1), dim=-1)  # (BN, d_0)
        v = F.normalize(torch.einsum("bnt,btd->bnd", out["phrase_frame_att"], video).flatten(0, 1), dim=-1)  # (BN, d_v)
        q_all = torch.cat([q] + [b[0] for b in self._bank], 0)
        v_all = torch.cat([v] + [b[1] for b in self._bank], 0)
        if self.training and self.cfg.feature_bank:
            self._bank = ([(q.detach(), v.detach())] + self._bank)[: self.cfg.feature_bank]
        return feature_margin_loss(q @ q_all.T, v @ v_all.T, self.cfg.feature_margin)


def phrase_loss(word_att: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 5: ||AᵀA - λI||²_F with A = [α^(1) .. α^(N)] (M, N), averaged over the batch.

    word_att: (B, N, M) rows α^(n).
    """
    gram = word_att @ word_att.transpose(1, 2)  # AᵀA: (B, N, N)
    eye = torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
    return ((gram - lam * eye) ** 2).sum((1, 2)).mean()


def attention_loss(beta: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 20: binary cross-entropy between frame attention β (B, T) and in-span tags (B, T), mean over valid frames."""
    bce = F.binary_cross_entropy(beta.clamp(eps, 1 - eps), tags.to(beta.dtype), reduction="none")
    m = mask.to(beta.dtype)
    return (bce * m).sum() / m.sum()


def feature_margin_loss(m_q: torch.Tensor, m_v: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 19: Σ_ij max(0, |M_v - M_q| - m0), divided by the number of entries so that λ_feats does not
    depend on the batch size (the paper sums; this is the same objective rescaled)."""
    return F.relu((m_v - m_q).abs() - margin).mean()
