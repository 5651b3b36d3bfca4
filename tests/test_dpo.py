"""DPO: preference records and their labels, the loss against TRL 1.16 as the oracle, the cached
reference log-probabilities, and end-to-end runs from an SFT export of the tiny model."""

from __future__ import annotations

import copy
import csv
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lima_recipes.config.resolvers import asset_path

PAIRS = asset_path("sample/preferences.jsonl")
QUICK = ["trainer.enable_progress_bar=false", "logger=csv"]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_records(path=PAIRS) -> list[dict]:
    from lima_recipes.data.records import read_jsonl

    return [record for _, record in read_jsonl(path)]


def tokenized(records, tokenizer, template, max_length=2048, on_invalid="error"):
    from lima_recipes.data.preferences import convert_pairs, tokenize_pairs

    pairs = convert_pairs([(f"pairs.jsonl:{i + 1}", r) for i, r in enumerate(records)], on_invalid=on_invalid)
    return tokenize_pairs(pairs, tokenizer, template, max_length, on_invalid)


@pytest.fixture
def lima_tokenizer(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    return tiny_tokenizer


# ---- the loss as a function ---------------------------------------------------------------

@pytest.mark.parametrize("loss_type,expected", [("sigmoid", math.log(2)), ("sigmoid_norm", math.log(2)), ("ipo", 25.0)])
def test_the_loss_where_the_policy_is_the_reference(loss_type, expected):
    """Zero log-ratios: DPO's loss is ln 2 exactly (in float32), IPO's is (1 / (2 beta))^2, and
    every implicit reward is 0."""
    from lima_recipes.model.preference_loss import preference_loss

    logps = torch.tensor([-12.5, -80.25, -3.0])
    tokens = torch.tensor([4, 30, 2])
    terms = preference_loss(logps, logps - 7.0, logps, logps - 7.0, tokens, tokens + 5, loss_type, beta=0.1)
    assert torch.equal(terms.loss, torch.full((3,), expected, dtype=torch.float32))
    assert not terms.chosen_rewards.any() and not terms.rejected_rewards.any()


def test_the_loss_falls_as_the_chosen_answer_gains_on_the_rejected_one():
    from lima_recipes.model.preference_loss import preference_loss

    zero, one = torch.zeros(1), torch.ones(1)
    gains = [preference_loss(zero + d, zero, zero, zero, one, one).loss.item() for d in (-1.0, 0.0, 1.0, 5.0)]
    assert gains == sorted(gains, reverse=True)
    with pytest.raises(ValueError, match="stage.loss='hinge' is not one of sigmoid, ipo, sigmoid_norm"):
        preference_loss(zero, zero, zero, zero, one, one, "hinge")


# ---- records and labels -------------------------------------------------------------------

def test_string_and_chat_records_become_the_same_pair():
    from lima_recipes.data.preferences import to_pair

    plain = to_pair({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}, "a:1")
    chat = to_pair({"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
                    "rejected": "Go away."}, "a:2")
    assert (plain.context, plain.chosen, plain.rejected) == (chat.context, chat.chosen, chat.rejected)


@pytest.mark.parametrize("record,reason", [
    ({"prompt": "Hi?", "chosen": "Hello!"}, "not a preference record: it needs 'prompt' \\(or 'messages'\\), 'chosen' and 'rejected'"),
    ({"prompt": "Hi?", "chosen": "Same.", "rejected": "Same."}, "'chosen' and 'rejected' are the same text"),
    ({"prompt": "Hi?", "chosen": " ", "rejected": "No."}, "'chosen' is empty"),
    ({"prompt": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yes?"}], "chosen": "a", "rejected": "b"},
     "the prompt must end with a user turn"),
    ({"prompt": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "chosen": "a", "rejected": "b"},
     "turn 2 is 'user' but 'assistant' was expected"),
    ({"prompt": "Hi?", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},
     "'chosen' must be a string or a list holding one assistant message"),
])
def test_a_bad_record_is_refused_with_its_file_and_line(tmp_path, record, reason):
    from lima_recipes.data.preferences import convert_pairs
    from lima_recipes.data.sources import RecordSource
    from lima_recipes.errors import DataFormatError

    path = write_jsonl(tmp_path / "pairs.jsonl", [read_records()[0], record])
    with pytest.raises(DataFormatError, match=f"^{path}:2: {reason}"):
        convert_pairs(RecordSource("test", path=str(path)).records())


def test_only_the_final_answer_and_its_end_of_turn_token_train(lima_tokenizer, lima_template):
    """A multi-turn prompt's earlier assistant turn is context; both rows share the prompt tokens."""
    record = {"prompt": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
                         {"role": "user", "content": "Another one?"}],
              "chosen": "Green, like grass.", "rejected": "No."}
    pairs = tokenized([record], lima_tokenizer, lima_template)
    eot = lima_template.end_of_turn(lima_tokenizer)
    for ids, labels, answer in ((pairs.chosen_ids[0], pairs.chosen_labels[0], record["chosen"]),
                                (pairs.rejected_ids[0], pairs.rejected_labels[0], record["rejected"])):
        trained = [int(t) for t, y in zip(ids, labels) if y != -100]
        assert lima_tokenizer.decode(trained) == answer + eot
        assert list(ids[: len(ids) - len(trained)]) == lima_tokenizer(lima_tokenizer.apply_chat_template(
            record["prompt"], tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert pairs.trained_tokens[0] == len(lima_tokenizer(record["chosen"] + eot, add_special_tokens=False)["input_ids"])


def test_long_pairs_are_cut_or_dropped_as_sft_examples_are_and_counted(lima_tokenizer, lima_template):
    long_answer = " ".join(["word"] * 200)
    records = [{"prompt": "Short?", "chosen": long_answer, "rejected": "No."},                 # cut, kept
               {"prompt": " ".join(["question"] * 200), "chosen": "Yes.", "rejected": "No."},  # no answer left
               {"prompt": "Fine?", "chosen": "Yes, fine.", "rejected": "No."}]
    pairs = tokenized(records, lima_tokenizer, lima_template, max_length=64)
    assert len(pairs) == 2 and pairs.stats["truncated"] == 1
    assert pairs.stats["skipped"] == {"no answer token within data.max_length=64": 1}
    assert max(len(x) for x in pairs.chosen_ids) == 64


def test_sft_on_preference_records_points_at_stage_dpo(tmp_path):
    from lima_recipes.data.records import load_jsonl_conversations
    from lima_recipes.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r":1: a preference record \(chosen/rejected\): train preference pairs with stage=dpo"):
        load_jsonl_conversations(PAIRS)


@pytest.mark.parametrize("overrides,expected", [
    (["stage=dpo", "data=preference_sample"], "stage=dpo starts from a trained model, which is also its reference: pass model.path="),
    (["stage=dpo", "model.path=/x"], "stage=dpo reads preference pairs .* not data.format=lima"),
    (["stage=dpo", "data=preference_sample", "model.path=/x", "stage.loss=kto"], "stage.loss='kto' is not one of"),
    (["stage=dpo", "data=preference_sample", "model.path=/x", "stage.beta=0"], "stage.beta=0.0 must be > 0"),
    (["data=preference_sample"], "data.format=preference holds chosen/rejected pairs: train them with stage=dpo"),
])
def test_bad_stage_settings_are_refused_naming_the_key(compose_cfg, overrides, expected):
    from lima_recipes.config import validate
    from lima_recipes.errors import ConfigError

    with pytest.raises(ConfigError, match=expected):
        validate(compose_cfg(*overrides))


def test_the_dpo_stage_brings_its_own_epochs_learning_rate_and_no_dropout(compose_cfg):
    cfg = compose_cfg("stage=dpo", "model=llama7b", "model.path=/x", "data=preference_sample")
    assert (cfg.trainer.max_epochs, list(cfg.trainer.checkpoint_epochs)) == (1, [])
    assert (cfg.optim.lr, cfg.optim.final_lr) == (5e-7, 5e-8)
    assert compose_cfg("stage=dpo", "model=llama7b", "adapter=lora").optim.lr == 5e-6
    assert compose_cfg().trainer.max_epochs == 15


def test_plan_counts_pairs_two_rows_each_and_no_dropout(compose_cfg):
    from lima_recipes.config.plan import count_examples, make_plan

    cfg = compose_cfg("model=llama7b", "model.path=/x", "data=preference_sample", "stage=dpo")
    assert count_examples(cfg) == (24, f"pairs read from data.path={PAIRS}")
    plan, as_sft = make_plan(cfg, 24, "given"), make_plan(compose_cfg("model=llama7b", "model.path=/x"), 24, "given")
    assert plan.memory.activations == pytest.approx(2 * as_sft.memory.activations, rel=0.01)
    assert max(plan.dropout_by_layer) == 0.0 and max(as_sft.dropout_by_layer) == 0.2


def test_lima7b_dpo_is_lima7b_with_the_dpo_stage(compose_cfg):
    from lima_recipes.config import validate

    sft = compose_cfg("experiment=lima7b")
    cfg = compose_cfg("experiment=lima7b_dpo", "model.path=/sft/export", "data.path=pairs.jsonl")
    validate(cfg)
    assert (cfg.stage.kind, cfg.stage.loss, cfg.stage.beta, cfg.stage.dropout) == ("dpo", "sigmoid", 0.1, False)
    assert (cfg.optim.lr, cfg.trainer.max_epochs, cfg.data.max_length) == (5e-7, 1, 2048)
    for key in ("model.name", "strategy.name", "template.name", "trainer.global_batch_size", "trainer.devices"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(sft, key), key


# ---- the loss and gradients against TRL -----------------------------------------------------

def tiny_policy_and_reference(compose_cfg):
    """The seeded tiny model as policy, and a perturbed copy as reference, so that the log-ratios
    are not zero and every term of the loss is exercised."""
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import build_model, load_tokenizer

    cfg = compose_cfg("model.residual_dropout=0")
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    policy = build_model(cfg.model, tokenizer, seed=0)
    reference = copy.deepcopy(policy)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    return cfg, tokenizer, template, policy, reference


def our_loss_and_grads(cfg, policy, batch, reference_table, loss_type, sft_weight):
    from lima_recipes.model.preference_module import PreferenceModule

    model = copy.deepcopy(policy).train()
    stage = type("Stage", (), {"loss": loss_type, "beta": 0.1, "sft_weight": sft_weight})
    module = PreferenceModule(lambda placement: model, cfg.optim, 1, stage, {})
    module.model = model
    module._reference["train"] = reference_table.float()
    loss = module.training_step(batch, 0)
    loss.backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


def trl_loss_and_grads(policy, reference, records, tokenizer, loss_type, sft_weight):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    def conversational(record):
        prompt = record["prompt"]
        answer = lambda a: a if isinstance(a, list) else [{"role": "assistant", "content": a}]  # noqa: E731
        return {"prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt,
                "chosen": answer(record["chosen"]), "rejected": answer(record["rejected"])}

    model = copy.deepcopy(policy)
    types, weights = ([loss_type, "sft"], [1.0, sft_weight]) if sft_weight else ([loss_type], [1.0])
    args = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=len(records), beta=0.1, loss_type=types,
                     loss_weights=weights, max_length=2048, use_cpu=True, bf16=False, report_to=[],
                     gradient_checkpointing=False, disable_dropout=True)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(reference), args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list([conversational(r) for r in records]))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(records))])
    model.train()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.slow
def test_loss_and_gradients_equal_trl_dpo_trainer(compose_cfg):
    """TRL 1.16's DPOTrainer is the oracle: its own tokenization (prompt then completion, left
    padding), reference forward and loss, on single- and multi-turn pairs, for every loss type
    and for DPO plus the SFT term."""
    from lima_recipes.data.batching import MicroBatch
    from lima_recipes.data.preferences import collate_pairs
    from lima_recipes.model.preference_loss import sequence_logps

    cfg, tokenizer, template, policy, reference = tiny_policy_and_reference(compose_cfg)
    records = read_records()[16:24]  # the last four have multi-turn or chat-form prompts
    pairs = tokenized(records, tokenizer, template)
    n = len(pairs)
    batch = collate_pairs(pairs, MicroBatch(tuple(range(n)), int(pairs.trained_tokens.sum()), global_examples=n),
                          tokenizer.pad_token_id)
    with torch.no_grad():
        logps, _ = sequence_logps(reference(input_ids=batch["input_ids"]).logits, batch["labels"])
    table = torch.stack([logps[:n], logps[n:]], dim=1)
    for loss_type, sft_weight in [("sigmoid", 0.0), ("ipo", 0.0), ("sigmoid_norm", 0.0), ("sigmoid", 0.5)]:
        ours, our_grads = our_loss_and_grads(cfg, policy, batch, table, loss_type, sft_weight)
        theirs, their_grads = trl_loss_and_grads(policy, reference, records, tokenizer, loss_type, sft_weight)
        assert ours == pytest.approx(theirs, rel=1e-6), loss_type
        for name, grad in their_grads.items():
            assert torch.allclose(our_grads[name], grad, rtol=1e-4, atol=1e-7), (loss_type, name)


def test_accumulation_1x8_8x1_and_2_ranks_give_the_same_gradients(compose_cfg):
    """Gradients as Lightning + DDP leave them (each micro loss / accumulation, summed, averaged
    over ranks): the mean over the global batch's pairs, plus the SFT term's token mean, whatever
    the split. 24 pairs, a global batch of 8: the third step's plan is used."""
    from lima_recipes.data.batching import BatchShape, MicroBatch, plan_epoch
    from lima_recipes.data.preferences import collate_pairs
    from lima_recipes.model.preference_loss import sequence_logps
    from lima_recipes.model.preference_module import PreferenceModule

    cfg, tokenizer, template, policy, reference = tiny_policy_and_reference(compose_cfg)
    pairs = tokenized(read_records(), tokenizer, template)
    everything = collate_pairs(pairs, MicroBatch(tuple(range(len(pairs))), 1, global_examples=len(pairs)), tokenizer.pad_token_id, 1)
    with torch.no_grad():
        logps, _ = sequence_logps(reference(input_ids=everything["input_ids"]).logits, everything["labels"])
    table = torch.stack([logps[: len(pairs)], logps[len(pairs):]], dim=1)
    stage = type("Stage", (), {"loss": "sigmoid", "beta": 0.1, "sft_weight": 0.5})
    module = PreferenceModule(lambda placement: policy, cfg.optim, 1, stage, {})
    module.model = policy.train()
    module._reference["train"] = table

    def grads(shape: BatchShape) -> dict[str, torch.Tensor]:
        policy.zero_grad()
        for rank in plan_epoch(pairs.lengths, pairs.trained_tokens, shape, 0, 0)[2]:
            for micro in rank:
                batch = collate_pairs(pairs, micro, tokenizer.pad_token_id, 1, shape.accumulation, shape.world_size)
                (module.training_step(batch, 0) / shape.accumulation / shape.world_size).backward()
        return {name: p.grad.clone() for name, p in policy.named_parameters()}

    one_big, eight_small, two_ranks = grads(BatchShape(8, 8, 1)), grads(BatchShape(8, 1, 1)), grads(BatchShape(8, 2, 2))
    assert any(g.abs().sum() > 0 for g in one_big.values())
    for name, grad in one_big.items():
        torch.testing.assert_close(eight_small[name], grad, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(two_ranks[name], grad, rtol=1e-4, atol=1e-6, msg=name)


# ---- the reference cache ----------------------------------------------------------------------

def fake_export(path: Path, seed: int, compose_cfg) -> Path:
    """A tiny HF directory as an SFT run exports it (weights, config, tokenizer)."""
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import build_model, load_tokenizer

    cfg = compose_cfg()
    tokenizer = load_tokenizer(cfg.model)
    build_template(cfg.template).install(tokenizer)
    build_model(cfg.model, tokenizer, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_the_reference_key_changes_with_weights_data_and_template_only(compose_cfg, tmp_path):
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import load_tokenizer
    from lima_recipes.train.run import reference_stores

    export = fake_export(tmp_path / "export", 0, compose_cfg)
    other = fake_export(tmp_path / "other", 1, compose_cfg)
    edited = write_jsonl(tmp_path / "edited.jsonl", read_records()[:-1] + [{**read_records()[-1], "rejected": "Changed."}])

    def paths(*overrides):
        cfg = compose_cfg("stage=dpo", "data=preference_sample", f"model.path={export}", *overrides)
        tokenizer = load_tokenizer(cfg.model)
        template = build_template(cfg.template)
        template.install(tokenizer)
        stores = reference_stores(cfg, tokenizer, template, [0] * 24, [0] * 6)
        return stores["train"].path, stores["dev"].path

    base = paths()
    assert paths() == base and paths("stage.beta=0.5", "optim.lr=1e-3", "run.seed=3") == base
    assert paths(f"model.path={other}")[0] != base[0]
    train, dev = paths(f"data.path={edited}")
    assert train != base[0] and dev == base[1]
    assert paths("template=chatml")[0] != base[0]
    assert paths("data.max_length=512")[0] != base[0]


def test_a_resumed_run_without_its_reference_cache_stops_with_the_fix(tmp_path):
    from lima_recipes.errors import ConfigError
    from lima_recipes.model.preference_module import PreferenceModule
    from lima_recipes.train.reference import ReferenceStore

    stage = type("Stage", (), {"loss": "sigmoid", "beta": 0.1, "sft_weight": 0.0})
    store = ReferenceStore(tmp_path / "gone.npz", 24, "data.path=pairs.jsonl")
    module = PreferenceModule(lambda placement: None, None, 1, stage, {"train": store}, resuming=True)
    with pytest.raises(ConfigError, match="gone.npz: the reference log-probabilities of data.path=pairs.jsonl are gone"):
        module._ensure_reference()


# ---- end to end -----------------------------------------------------------------------------

def dpo(compose_cfg, run_dir: Path, export: Path, *overrides: str) -> dict:
    from lima_recipes.train.run import run_training

    return run_training(compose_cfg("stage=dpo", "data=preference_sample", f"model.path={export}", *QUICK, *overrides), run_dir)


def logged(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_first_step_is_ln2_and_the_reference_cache_is_reused(compose_cfg, tmp_path, sft_export, caplog):
    """At step 0 the policy is the reference: loss ln 2, margins 0. A second run with other
    optimisation settings reads the cached reference instead of recomputing it."""
    import logging

    caplog.set_level(logging.INFO, logger="lima_recipes.model.preference_module")
    dpo(compose_cfg, tmp_path / "a", sft_export)
    first = logged(tmp_path / "a")[0]
    assert first["train/loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert abs(first["train/rewards/margins"]) < 1e-6 and first["train/pairs"] == 8
    assert sum("written to" in r.message for r in caplog.records) == 2  # train and dev pairs
    cached = sorted((tmp_path / "reference").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    caplog.clear()
    dpo(compose_cfg, tmp_path / "b", sft_export, "stage.beta=0.3")
    assert sum("read from" in r.message for r in caplog.records) == 2
    assert not any("written to" in r.message for r in caplog.records)
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "reference").glob("*.npz"))] == stamps
    assert json.loads((tmp_path / "b" / "export" / "lima_recipes.json").read_text())["stage"]["beta"] == 0.3


@pytest.mark.slow
def test_training_on_a_fixed_chosen_sentence_raises_it_and_lowers_the_rejected(compose_cfg, tmp_path, sft_export):
    """Every pair prefers one fixed sentence: after DPO the policy gives it a higher, and the
    rejected answers a lower, log-probability than the SFT model did."""
    from lima_recipes.data.batching import MicroBatch
    from lima_recipes.data.preferences import collate_pairs, load_preference_set
    from lima_recipes.data.sources import RecordSource
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.preference_loss import sequence_logps
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fixed = "I am glad to help with that."
    records = [{"prompt": r["prompt"], "chosen": fixed, "rejected": r["rejected"]} for r in read_records()]
    path = write_jsonl(tmp_path / "fixed.jsonl", records)
    result = dpo(compose_cfg, tmp_path / "run", sft_export, f"data.path={path}", "data.dev_path=null", "stage.max_epochs=4",
                 "stage.lr_scale=1")

    cfg = compose_cfg("stage=dpo", f"data.path={path}", f"model.path={sft_export}")
    tokenizer = AutoTokenizer.from_pretrained(sft_export)
    pairs = load_preference_set(RecordSource("fixed", path=str(path)), tokenizer, build_template(cfg.template), cfg.data)
    batch = collate_pairs(pairs, MicroBatch(tuple(range(len(pairs))), 1, global_examples=len(pairs)), tokenizer.pad_token_id)

    def mean_logps(model_dir):
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        with torch.no_grad():
            logps, _ = sequence_logps(model(input_ids=batch["input_ids"]).logits, batch["labels"])
        return logps[: len(pairs)].mean().item(), logps[len(pairs):].mean().item()

    (chosen_before, rejected_before), (chosen_after, rejected_after) = mean_logps(sft_export), mean_logps(result["export"])
    assert chosen_after > chosen_before and rejected_after < rejected_before
    assert logged(tmp_path / "run")[-1]["train/rewards/accuracies"] == 1.0


@pytest.mark.slow
def test_a_resumed_run_reads_its_reference_and_ends_with_the_uninterrupted_weights(compose_cfg, tmp_path, sft_export, caplog):
    """2 epochs of 3 steps, stopped after step 4 (mid-epoch 2): the resumed run reads the cached
    reference log-probabilities (its weights are no longer the reference) and ends where an
    uninterrupted run does."""
    import logging

    from safetensors.torch import load_file

    from interrupt import stopped_after_step  # pytest puts tests/ on the import path

    run = ["stage.max_epochs=2", "trainer.checkpoint_every_n_steps=1", "trainer.micro_batch_size=2", "stage.lr_scale=1"]
    dpo(compose_cfg, tmp_path / "a", sft_export, *run)
    with stopped_after_step(4):
        dpo(compose_cfg, tmp_path / "b", sft_export, *run)
    caplog.set_level(logging.INFO, logger="lima_recipes.model.preference_module")
    assert dpo(compose_cfg, tmp_path / "b", sft_export, *run)["steps"] == 6
    assert sum("read from" in r.message for r in caplog.records) == 2
    ours, theirs = load_file(tmp_path / "b" / "export" / "model.safetensors"), load_file(tmp_path / "a" / "export" / "model.safetensors")
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [["strategy=ddp"], ["strategy=fsdp", "strategy.precision=32-true"]], ids=["ddp", "fsdp2"])
def test_two_gloo_ranks_equal_one_process(compose_cfg, tmp_path, sft_export, strategy):
    """Each rank computes the reference of its share of the pairs and every rank gets the whole
    table; the pair mean over the global batch makes 2 ranks x 4 micro-batches one process x 8."""
    from safetensors.torch import load_file

    from test_sharded import run_distributed  # pytest puts tests/ on the import path

    run = ["stage=dpo", "data=preference_sample", f"model.path={sft_export}", "strategy.precision=32-true"]
    dpo(compose_cfg, tmp_path / "single", sft_export, *run[3:])
    proc = run_distributed("train", tmp_path / "two", *run, *strategy, f"stage.reference_cache_dir={tmp_path}/two-reference")
    assert proc.returncode == 0, proc.stderr[-4000:]

    def weights(export: Path) -> dict:
        return {k: v for f in sorted(export.glob("*.safetensors")) for k, v in load_file(f).items()}

    ours, theirs = weights(tmp_path / "two" / "run" / "export"), weights(tmp_path / "single" / "export")
    assert ours.keys() == theirs.keys()
    assert sorted(p.name for p in (tmp_path / "two-reference").glob("*.npz")) == sorted(p.name for p in (tmp_path / "reference").glob("*.npz"))
    start = weights(sft_export)
    assert any(not torch.equal(theirs[k], start[k]) for k in start)
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-6, msg=name)
