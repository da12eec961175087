"""Building blocks shared by ExCL and PLPNet."""

from __future__ import annotations

import torch
from torch import nn

# Logit given to padded or forbidden positions. Finite so that fp16 export and softmax stay NaN-free.
NEG = -1e4


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the valid prefix of each right-padded sequence; padding stays in place.

    x: (B, T, D), lengths: (B,) -> (B, T, D). Applying it twice is the identity.
    """
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    n = lengths[:, None]
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))


class BiLSTM(nn.Module):
    """Bidirectional (multi-layer) LSTM over right-padded sequences.

    Exact at every valid step without packed sequences, so it exports to ONNX with dynamic
    batch and time axes: the backward direction runs on each sequence's reversed valid prefix.
    Returns per-step states (B, T, 2H), zero at padding, and the sentence state
    [forward state at the last valid step; backward state at step 0] (B, 2H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.fw = nn.ModuleList()
        self.bw = nn.ModuleList()
        for i in range(num_layers):
            size = input_size if i == 0 else 2 * hidden_size
            self.fw.append(nn.LSTM(size, hidden_size, batch_first=True))
            self.bw.append(nn.LSTM(size, hidden_size, batch_first=True))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = mask.sum(1).long()  # (B,)
        for i, (fw, bw) in enumerate(zip(self.fw, self.bw)):
            if i:
                x = self.drop(x)
            h_f, _ = fw(x)  # (B, T, H)
            h_b, _ = bw(reverse_padded(x, lengths))
            h_b = reverse_padded(h_b, lengths)
            x = torch.cat([h_f, h_b], -1)  # (B, T, 2H)
        x = x * mask[..., None].to(x.dtype)
        last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, self.hidden_size)
        sentence = torch.cat([h_f.gather(1, last)[:, 0], h_b[:, 0]], -1)  # (B, 2H)
        return self.drop(x), self.drop(sentence)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax with masked positions given NEG logits (probability ~0)."""
    return torch.softmax(logits.masked_fill(~mask, NEG), dim)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool mask of valid steps."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class RetrievalHead(nn.Module):
    """Projects a sentence embedding and per-step video states into one space for library search.

    Text: L2-normalised (B, E). Video: per-step projections (B, T, E); a window's embedding is the
    L2-normalised mean of its steps (linear, so the index pools windows from cached step outputs).
    """

    def __init__(self, text_dim: int, video_dim: int, dim: int):
        super().__init__()
        self.text = nn.Linear(text_dim, dim)
        self.video = nn.Linear(video_dim, dim)

    def embed_text(self, sentence: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.text(sentence), dim=-1)

    def embed_steps(self, video_states: torch.Tensor) -> torch.Tensor:
        return self.video(video_states)


def retrieval_loss(text: torch.Tensor, steps: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                   mask: torch.Tensor, vids: list[str], temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE of each query against its ground-truth window, across and within videos.

    text (B, E) normalised; steps (B, T, E) step projections; start/end (B,) inclusive ground-truth steps.
    Across videos: the other items' ground-truth windows are negatives (items of the same video are
    left out, they may show the same moment). Within a video: every window of the ground truth's
    length that does not overlap it is a negative. Returns the sum of the two cross-entropies.
    """
    b, t, _ = steps.shape
    ar = torch.arange(t, device=steps.device)[None, :]
    inside = ((ar >= start[:, None]) & (ar <= end[:, None])).to(steps.dtype)  # (B, T)
    pos = torch.nn.functional.normalize((steps * inside[..., None]).sum(1) / inside.sum(1, keepdim=True), dim=-1)
    cross = text @ pos.T / temperature  # (B, B)
    same = torch.tensor([[a == c for c in vids] for a in vids], device=steps.device) & ~torch.eye(b, dtype=torch.bool, device=steps.device)
    loss = torch.nn.functional.cross_entropy(cross.masked_fill(same, NEG), torch.arange(b, device=steps.device))
    # windows of the ground-truth length starting at every step, from a cumulative sum
    length = (end - start + 1)[:, None]  # (B, 1)
    csum = torch.cat([torch.zeros_like(steps[:, :1]), steps.cumsum(1)], 1)  # (B, T+1, E)
    stop = (ar + length).clamp(max=t)
    windows = csum.gather(1, stop[..., None].expand(-1, -1, steps.shape[2])) - csum[:, :t]
    windows = torch.nn.functional.normalize(windows, dim=-1)
    n_valid = mask.sum(1, keepdim=True)
    negative = (ar + length <= n_valid) & ((ar + length - 1 < start[:, None]) | (ar > end[:, None]))  # (B, T)
    within = torch.cat([(text * pos).sum(-1, keepdim=True), torch.einsum("be,bte->bt", text, windows)], 1) / temperature
    within = within.masked_fill(~torch.cat([torch.ones_like(negative[:, :1]), negative], 1), NEG)
    return loss + torch.nn.functional.cross_entropy(within, torch.zeros(b, dtype=torch.long, device=steps.device))
