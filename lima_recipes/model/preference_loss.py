"""DPO and its variants as pure functions of sequence log-probabilities.

Formulas as in TRL 1.16's DPOTrainer (the tests run it as the oracle):
- sigmoid (DPO, Rafailov et al. 2023): -log sigmoid(beta * (dchosen - drejected)), where d is the
  policy's log-probability of an answer minus the reference's.
- ipo (Azar et al. 2023): (dchosen/|chosen| - drejected/|rejected| - 1/(2 beta))^2, log-ratios
  averaged per answer token (TRL: "confirmed with the IPO authors").
- sigmoid_norm (length-normalised DPO, SimPO App. I / Tulu 3 sec. 4.3): DPO on per-token log-ratios.
The SFT term on the chosen answers (RPO: DPO + NLL) is added by the module, as a token mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lima_recipes.data.tokenize import IGNORE_INDEX

LOSS_TYPES = ("sigmoid", "ipo", "sigmoid_norm")


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed log-probability of its trained tokens (labels != -100), and their count.
    Labels move one position left, as in the SFT loss."""
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    token_nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                                ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
    return -token_nll.sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1)


@dataclass(frozen=True)
class PairTerms:
    """Per pair: the loss and the implicit rewards beta * (policy - reference) log-ratios."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
                    loss_type: str = "sigmoid", beta: float = 0.1) -> PairTerms:
    """Per-pair loss of one of LOSS_TYPES; every argument is a tensor of one value per pair."""
    chosen_logratios = policy_chosen - ref_chosen
    rejected_logratios = policy_rejected - ref_rejected
    if loss_type == "sigmoid":
        loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    elif loss_type in ("ipo", "sigmoid_norm"):
        delta = chosen_logratios / chosen_tokens.clamp(min=1) - rejected_logratios / rejected_tokens.clamp(min=1)
        loss = (delta - 1 / (2 * beta)) ** 2 if loss_type == "ipo" else -F.logsigmoid(beta * delta)
    else:
        raise ValueError(f"stage.loss={loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
    return PairTerms(loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())
