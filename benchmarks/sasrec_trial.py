"""SASRec trial (issue 10's record): a deep sequential ranker, alone and blended.

SASRec (Kang & McAuley 2018): causal self-attention over each user's latest training
ratings, trained with a full-softmax next-title loss, scored with the harness of
``ranking_variants.py`` (the registered configuration fitted on ``03_modeling``'s
validation split and on ``04_evaluation``'s per-user test split). Its scores are used
alone and blended into the registered ranker's z-scores.

PyTorch is not a dependency of the project: it is needed by this trial only.

    .venv/bin/pip install torch          # a CPU build is enough
    .venv/bin/python benchmarks/sasrec_trial.py     # ~6 s an epoch on 2 cores, ~15 min

The defaults are the trial recorded in ``ranking_variants.py``'s docstring. Asserts
nothing; prints one line per evaluated epoch and split.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:  # checked before any data is loaded: a clear message, no traceback
    sys.exit("benchmarks/sasrec_trial.py needs PyTorch, which is not a project "
             "dependency: install it with `.venv/bin/pip install torch` and rerun.")

from _common import served_ranking  # noqa: E402
from ranking_variants import Scored  # noqa: E402

from recsys_utils.ranking.catalog import zscore_rows  # noqa: E402
from recsys_utils.ranking.evaluation import last_n_split, validation_split  # noqa: E402

BLEND_WEIGHTS = (0.25, 0.5, 1.0)


class SASRec(nn.Module):
    """Title and position embeddings -> pre-norm causal transformer blocks -> one state
    per position, scored against the (shared) title embeddings."""

    def __init__(self, n_titles: int, dim: int, blocks: int, dropout: float,
                 max_len: int) -> None:
        super().__init__()
        self.title = nn.Embedding(n_titles + 1, dim, padding_idx=0)  # 0 pads short histories
        self.position = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, 1, dim, dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.title.weight, std=dim ** -0.5)
        nn.init.normal_(self.position.weight, std=0.02)
        with torch.no_grad():
            self.title.weight[0] = 0

    def forward(self, titles: torch.Tensor) -> torch.Tensor:
        length = titles.shape[1]
        x = self.dropout(self.title(titles) + self.position(torch.arange(length)))
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        return self.norm(self.blocks(x, mask=future, src_key_padding_mask=titles == 0))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.title.weight[1:].T


def histories(s: Scored) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each training user's catalog positions (+1; 0 is padding), oldest first."""
    starts = np.r_[0, np.flatnonzero(np.diff(s.u)) + 1, len(s.u)]
    return s.u[starts[:-1]], [s.i[b:e] + 1 for b, e in zip(starts[:-1], starts[1:], strict=True)]


def right_aligned(sequences: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, length - len(seq):] = seq
    return out


def train_and_score(name: str, s: Scored, args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    users, seqs = histories(s)
    model = SASRec(len(s.rec.item_ids), args.dim, args.blocks, args.dropout, args.max_len)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    window = args.max_len + 1  # inputs are the first max_len, targets the last max_len

    def windows() -> np.ndarray:
        """One random window of each longer history (the latest for shorter ones)."""
        cut = []
        for seq in seqs:
            end = len(seq) if len(seq) <= window else int(rng.integers(window, len(seq) + 1))
            cut.append(seq[max(0, end - window):end])
        return right_aligned(cut, window)

    def scores() -> np.ndarray:
        model.eval()
        out = np.zeros(s.base.shape)
        with torch.no_grad():
            for b in range(0, len(seqs), 128):
                x = right_aligned([q[-args.max_len:] for q in seqs[b:b + 128]], args.max_len)
                out[users[b:b + 128]] = model.logits(model(torch.from_numpy(x))[:, -1]).numpy()
        model.train()
        return out

    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        x_all = windows()
        total = 0.0
        order = rng.permutation(len(seqs))
        for batch in (order[b:b + args.batch] for b in range(0, len(order), args.batch)):
            x = torch.from_numpy(x_all[batch, :-1])
            target = torch.from_numpy(x_all[batch, 1:]) - 1
            keep = (x != 0) & (target >= 0)
            loss = nn.functional.cross_entropy(model.logits(model(x)[keep]), target[keep])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        if epoch % args.every == 0 or epoch == args.epochs:
            sasrec = scores()
            blended = "  ".join(f"w {w:g}: {s.ndcg(s.base + w * zscore_rows(sasrec)).mean():.4f}"
                                for w in BLEND_WEIGHTS)
            print(f"{name:10s} epoch {epoch:3d}  loss {total:8.1f}  alone "
                  f"{s.ndcg(sasrec).mean():.4f}  blended {blended}  registered "
                  f"{s.baseline.mean():.4f}  [{time.perf_counter() - started:.0f} s]",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--max-len", type=int, default=200, help="latest ratings read")
    parser.add_argument("--epochs", type=int, default=70)
    parser.add_argument("--every", type=int, default=35, help="score every this many epochs")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--splits", default="validation,test")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_df, titles, source, ranking, where = served_ranking()
    print(f"data: {source}; ranking: {where}; torch {torch.__version__}", flush=True)
    for name in args.splits.split(","):
        split = (validation_split(model_df) if name == "validation"
                 else last_n_split(model_df, fraction=0.2))
        train_and_score(name, Scored(split, titles, ranking), args)


if __name__ == "__main__":
    main()
