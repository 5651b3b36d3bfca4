"""The training loss against independent references, and its independence from how a global
batch is split into micro-batches, accumulation steps and ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lima_recipes.data.batching import BatchShape, MicroBatch, collate, plan_epoch
from lima_recipes.data.dataset import load_or_tokenize
from lima_recipes.data.sources import train_source
from lima_recipes.model.build import build_model
from lima_recipes.model.module import CausalLMModule


def _setup(compose_cfg, tiny_tokenizer, lima_template, max_length: int):
    cfg = compose_cfg(f"data.max_length={max_length}", "data.pad_to_multiple_of=1")
    lima_template.install(tiny_tokenizer)
    data, _ = load_or_tokenize(train_source(cfg.data), tiny_tokenizer, lima_template, cfg.data)
    model = build_model(cfg.model, tiny_tokenizer, seed=0).eval()  # eval: dropout off, exact comparisons
    module = CausalLMModule(lambda _: model, cfg.optim, total_steps=10)
    module.configure_model()
    return module, data, tiny_tokenizer.pad_token_id


@pytest.fixture
def setup(compose_cfg, tiny_tokenizer, lima_template):
    return _setup(compose_cfg, tiny_tokenizer, lima_template, max_length=96)


@pytest.fixture
def uncut(compose_cfg, tiny_tokenizer, lima_template):
    """Examples of their own lengths (none reaches 2048), so batches have padding."""
    return _setup(compose_cfg, tiny_tokenizer, lima_template, max_length=2048)


def test_loss_equals_a_plain_pytorch_loop_and_hf_loss(setup):
    module, data, pad = setup
    micro = plan_epoch(data.lengths, data.trained_tokens, BatchShape(8, 8, 1), 0, 0)[0][0][0]
    batch = collate(data, micro, pad)
    ours = module.training_step(batch, 0)
    # plain loop: logits -> shift -> mean cross-entropy over trained tokens
    logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
    hf = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-5)


def grads_for(module, data, pad, shape: BatchShape) -> dict[str, torch.Tensor]:
    """Gradients as Lightning + DDP would leave them: each micro loss / accumulation, summed over
    micro-steps, then averaged over ranks."""
    module.model.zero_grad()
    step = plan_epoch(data.lengths, data.trained_tokens, shape, 0, 0)[0]
    for rank in step:
        for micro in rank:
            loss = module.training_step(collate(data, micro, pad, 1, shape.accumulation, shape.world_size), 0)
            (loss / shape.accumulation / shape.world_size).backward()
    return {n: p.grad.clone() for n, p in module.model.named_parameters()}


def test_accumulation_1x8_8x1_and_2_ranks_give_the_same_gradients(setup):
    module, data, pad = setup
    one_big = grads_for(module, data, pad, BatchShape(8, 8, 1))
    eight_small = grads_for(module, data, pad, BatchShape(8, 1, 1))
    two_ranks = grads_for(module, data, pad, BatchShape(8, 2, 2))
    for name, grad in one_big.items():
        torch.testing.assert_close(eight_small[name], grad, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(two_ranks[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_token_mean_weights_long_examples_more_than_a_per_example_mean(setup):
    """The loss is a mean over tokens, not over examples: with unequal lengths the two differ."""
    module, data, pad = setup
    micro = plan_epoch(data.lengths, data.trained_tokens, BatchShape(8, 8, 1), 0, 0)[0][0][0]
    batch = collate(data, micro, pad)
    logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_example = [
        F.cross_entropy(logits[i, :-1], batch["labels"][i, 1:], ignore_index=-100) for i in range(len(micro.indices))
    ]
    counts = (batch["labels"][:, 1:] != -100).sum(1)
    assert len(set(counts.tolist())) > 1
    token_mean = sum(l * c for l, c in zip(per_example, counts)) / counts.sum()
    torch.testing.assert_close(module.training_step(batch, 0), token_mean, rtol=1e-5, atol=1e-5)
    assert not np.isclose(float(torch.stack(per_example).mean()), float(token_mean), rtol=1e-6)


def _padded_batch(data, pad):
    # the longest example with the four shortest: most rows end in padding
    order = np.argsort(data.lengths, kind="stable")
    indices = (int(order[-1]), *(int(i) for i in order[:4]))
    micro = MicroBatch(indices, int(sum(data.trained_tokens[i] for i in indices)))
    batch = collate(data, micro, pad)
    assert (batch["attention_mask"] == 0).sum() > 50, "the comparison needs a batch with padding"
    return batch


def test_causal_attention_without_the_padding_mask_gives_the_masked_loss_and_gradients(uncut):
    """Our default leaves the padding mask out of attention; the reference passes it."""
    module, data, pad = uncut
    batch = _padded_batch(data, pad)
    module.model.zero_grad()
    ours = module.training_step(batch, 0)
    ours.backward()
    ours_grads = {n: p.grad.clone() for n, p in module.model.named_parameters()}

    module.model.zero_grad()
    logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:].reshape(-1)
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets, ignore_index=-100, reduction="sum")
    reference = reference / batch["global_trained_tokens"].float()
    reference.backward()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    for name, param in module.model.named_parameters():
        torch.testing.assert_close(ours_grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_without_the_mask_pads_would_change_a_left_padded_batch_so_it_is_refused(uncut):
    module, data, pad = uncut
    batch = _padded_batch(data, pad)
    # the same rows padded on the left: causal attention alone would let real tokens see pads
    left = {k: v for k, v in batch.items()}
    widths = batch["attention_mask"].sum(1)
    for key, fill in (("input_ids", pad), ("attention_mask", 0), ("labels", -100)):
        rows = []
        for row, n in zip(batch[key], widths):
            rows.append(torch.cat([torch.full((len(row) - int(n),), fill, dtype=row.dtype), row[: int(n)]]))
        left[key] = torch.stack(rows)
    with torch.no_grad():
        masked = module.model(input_ids=left["input_ids"], attention_mask=left["attention_mask"]).logits
        unmasked = module.model(input_ids=left["input_ids"]).logits
    real = left["attention_mask"].bool()
    assert not torch.allclose(masked[real], unmasked[real], atol=1e-4)
    with pytest.raises(ValueError, match="padding_mask_in_attention"):
        module.training_step(left, 0)
    # a batch bound for a GPU is checked on the host, before it moves
    with pytest.raises(ValueError, match="padding_mask_in_attention"):
        module.on_before_batch_transfer(left, 0)
    assert module.on_before_batch_transfer(batch, 0) is batch
    module.padding_mask_in_attention = True
    assert module.on_before_batch_transfer(left, 0) is left
    torch.testing.assert_close(module.training_step(left, 0), module.training_step(batch, 0), rtol=1e-5, atol=1e-6)


def test_dropout_masks_depend_only_on_seed_step_and_micro_step(setup):
    """Seeding only this device's generator still fixes every dropout mask: the same (seed,
    optimizer step, micro-step) gives the same loss whatever the generator held before, and a
    different micro-step or run seed draws other masks."""
    from lima_recipes.model.dropout import apply_residual_dropout

    module, data, pad = setup
    apply_residual_dropout(module.model, 0.3)
    module.model.train()
    batch = collate(data, plan_epoch(data.lengths, data.trained_tokens, BatchShape(4, 4, 1), 0, 0)[0][0][0], pad)

    def loss_at(micro_step: int, seed: int = 0) -> float:
        module._micro_steps, module.seed = micro_step, seed
        torch.rand(int(torch.randint(1, 1000, ()).item()))  # the generator moved on by some amount
        return module.training_step(batch, 0).item()

    first, second = loss_at(0), loss_at(1)
    assert loss_at(0) == first and loss_at(1) == second
    assert second != first and loss_at(0, seed=1) != first
    module.model.eval()
    assert module.training_step(batch, 0).item() not in (first, second)  # dropout was really on
