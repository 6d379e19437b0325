"""``recsys.matrix_factorization``'s modules: the factorization it trains, the one it serves.

Imported only inside the job's process (it imports torch at the top, so that
TorchScript can compile :class:`TopK`). No ``from __future__ import annotations``
here: TorchScript reads the buffers' class annotations as types, not strings.
"""

import torch
from torch import nn

#: The score of an item the user already has: below any real score, and finite in JSON.
SEEN_SCORE = -1.0e9


class Factorization(nn.Module):
    """score(u, i) = <user factors, item factors> + item bias, trained with BPR."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, factors)
        self.items = nn.Embedding(n_items, factors)
        self.bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)
        nn.init.zeros_(self.bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs (items may be [B, m] for m candidates each)."""
        user = self.users(users)
        if items.dim() == 2:
            user = user.unsqueeze(1)
        score: torch.Tensor = (user * self.items(items)).sum(-1) + self.bias(items).squeeze(-1)
        return score

    def penalty(
        self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The squared L2 norm of the factors (and biases) a batch uses, per positive."""
        total = self.users(users).pow(2).sum(-1) + self.items(items).pow(2).sum(-1)
        total = total + self.items(negatives).pow(2).sum(-1).mean(-1)
        total = (
            total + self.bias(items).pow(2).squeeze(-1) + self.bias(negatives).pow(2).mean((1, 2))
        )
        result: torch.Tensor = total.mean()
        return result


class TopK(nn.Module):
    """Served: user ids [N] -> the k best items [N, k] (best first) and their scores [N, k].

    A user the training data never saw (an id outside it, or one without
    interactions) gets the most popular items. With ``exclude_seen`` the items a
    user interacted with in training are ranked last.
    """

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    item_bias: torch.Tensor
    seen: torch.Tensor
    trained: torch.Tensor
    popularity: torch.Tensor

    def __init__(
        self,
        model: Factorization,
        seen: torch.Tensor,
        popularity: torch.Tensor,
        k: int,
        exclude_seen: bool,
    ) -> None:
        super().__init__()
        self.register_buffer("user_factors", model.users.weight.detach().clone().cpu())
        self.register_buffer("item_factors", model.items.weight.detach().clone().cpu())
        self.register_buffer("item_bias", model.bias.weight.detach().clone().cpu().squeeze(1))
        self.register_buffer("seen", seen.cpu())
        self.register_buffer("trained", seen.any(dim=1).cpu())
        self.register_buffer("popularity", popularity.float().cpu())
        self.k = k
        self.exclude_seen = exclude_seen
        self.seen_score = SEEN_SCORE

    def forward(self, user: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The top k items of each user, and their scores."""
        inside = (user >= 0) & (user < self.user_factors.shape[0])
        safe = torch.where(inside, user, torch.zeros_like(user))
        known = (inside & self.trained[safe]).unsqueeze(1)
        scores = self.user_factors[safe] @ self.item_factors.t() + self.item_bias
        scores = torch.where(known, scores, self.popularity.unsqueeze(0).expand_as(scores))
        if self.exclude_seen:
            scores = scores.masked_fill(self.seen[safe] & known, self.seen_score)
        top = torch.topk(scores, self.k, dim=1)
        return top.indices, top.values
