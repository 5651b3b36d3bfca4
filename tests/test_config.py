"""Every option of every group composes and validates; errors name the key and the fix."""

from __future__ import annotations

import pytest

from lima_recipes.config import CONF_DIR, validate
from lima_recipes.errors import ConfigError

GROUPS = ["model", "data", "template", "strategy", "adapter", "stage", "optim", "trainer", "logger", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_its_options():
    assert options("model") == ["gemma3_270m", "hf", "llama13b", "llama2_13b", "llama2_70b", "llama2_7b", "llama33b", "llama3_70b", "llama3_8b",
                                "llama65b", "llama7b", "mistral_7b", "qwen2_5_0_5b", "qwen2_5_7b", "smollm2_135m", "tiny"]
    assert options("strategy") == ["auto", "ddp", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload", "fsdp", "fsdp_offload"]
    assert options("template") == ["chatml", "lima", "model"]
    assert {"sample", "lima1k", "lima_multiturn", "jsonl", "curated"} <= set(options("data"))
    assert {"lima65b", "lima7b"} <= set(options("experiment"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(compose_cfg, group, option, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "set")  # the ablation presets judge with judge=openai
    extra = {
        ("model", "hf"): ["model.path=/models/some-llama"],
        ("data", "jsonl"): ["data.path=x.jsonl"],
        ("data", "curated"): ["data.path=x.jsonl"],
        ("data", "preference_sample"): ["stage=dpo", "model.path=/models/sft-export"],
        ("stage", "dpo"): ["data=preference_sample", "model.path=/models/sft-export"],
        ("experiment", "lima7b_dpo"): ["model.path=/models/sft-export", "data.path=pairs.jsonl"],
    }.get((group, option), [])
    cfg = compose_cfg(f"{group}={option}", *extra)
    validate(cfg)
    if group != "experiment":
        assert cfg[group].name == option


def test_lima_recipe_values_for_65b(compose_cfg):
    for cfg in (compose_cfg("model=llama65b", "data=lima1k"), compose_cfg("experiment=lima65b")):
        assert cfg.optim.lr == 1e-5 and cfg.optim.final_lr == 1e-6 and cfg.optim.warmup_steps == 0
        assert list(cfg.optim.betas) == [0.9, 0.95] and cfg.optim.weight_decay == 0.1
        assert cfg.trainer.global_batch_size == 32 and cfg.trainer.max_epochs == 15
        assert cfg.model.residual_dropout == 0.3 and cfg.data.max_length == 2048
        assert list(cfg.trainer.checkpoint_epochs) == [5, 6, 7, 8, 9, 10]
        assert cfg.template.name == "lima" and cfg.data.max_user_turns == 1
        assert cfg.generation.top_p == 0.9 and cfg.generation.temperature == 0.7 and cfg.generation.repetition_penalty == 1.2


def test_smaller_models_use_batch_64_and_dropout_02(compose_cfg):
    for cfg in (compose_cfg("model=llama7b", "data=lima1k"), compose_cfg("experiment=lima7b")):
        assert cfg.trainer.global_batch_size == 64 and cfg.model.residual_dropout == 0.2 and cfg.optim.lr == 1e-5


def test_misspelt_key_names_the_closest_valid_one(compose_cfg):
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.max_epoch'.*did you mean 'trainer.max_epochs'"):
        compose_cfg("trainer.max_epoch=3")


@pytest.mark.parametrize("override,message", [
    ("trainer.max_epochs=many", "trainer.max_epochs='many' is not a valid Integer"),
    ("model.padding_mask_in_attention=maybe", "model.padding_mask_in_attention='maybe' is not a valid bool"),
])
def test_a_value_of_the_wrong_type_names_the_key_and_the_type(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        compose_cfg(override)
    assert str(err.value) == message


def test_unknown_option_lists_the_available_ones(compose_cfg):
    with pytest.raises(ConfigError, match=r"unknown option 'llama65bb'.*did you mean 'model=llama65b'"):
        compose_cfg("model=llama65bb")


def test_impossible_combinations_fail_together_before_any_work(compose_cfg):
    cfg = compose_cfg("trainer.global_batch_size=10", "trainer.micro_batch_size=4", "data.max_length=4096", "optim.final_lr=1")
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    text = str(err.value)
    assert "3 config problems" in text
    assert "trainer.global_batch_size=10 is not a multiple of trainer.micro_batch_size=4" in text
    assert "data.max_length=4096 exceeds model.max_position_embeddings=2048" in text
    assert "optim.final_lr=1" in text


def test_batch_must_divide_by_devices(compose_cfg):
    with pytest.raises(ConfigError, match=r"x 3 devices"):
        validate(compose_cfg("trainer.devices=3"))


def test_missing_data_path_says_how_to_provide_it(compose_cfg):
    with pytest.raises(ConfigError, match=r"data=jsonl needs a source: pass data.path="):
        validate(compose_cfg("data=jsonl"))


def test_gpu_only_strategy_on_cpu_accelerator_is_rejected_and_fsdp_is_not(compose_cfg):
    with pytest.raises(ConfigError, match=r"strategy=deepspeed_zero3 needs CUDA GPUs"):
        validate(compose_cfg("strategy=deepspeed_zero3", "trainer.accelerator=cpu"))
    validate(compose_cfg("strategy=fsdp", "trainer.accelerator=cpu"))  # FSDP2 runs on gloo


def test_same_config_same_run_id_and_changes_change_it(compose_cfg):
    from lima_recipes.config.resolvers import config_hash

    a, b, c = compose_cfg(), compose_cfg(), compose_cfg("trainer.max_epochs=3")
    assert config_hash(a) == config_hash(b) != config_hash(c)
    # how a run is carried out or watched does not make it another run
    same = compose_cfg("trainer.checkpoint_every_n_steps=10", "logger=wandb", "trainer.enable_progress_bar=false",
                       "data.num_workers=2", "run.output_root=/elsewhere")
    assert config_hash(same) == config_hash(a) != config_hash(compose_cfg("data.max_examples=16"))


def test_a_typo_inside_a_preset_file_fails_at_compose_time(tmp_path):
    import shutil

    from lima_recipes.config import compose

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "experiment" / "typo.yaml").write_text("# @package _global_\ntrainer:\n  max_epoch: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.max_epoch' in conf/experiment/typo.yaml \(did you mean 'trainer.max_epochs'"):
        compose(["experiment=typo"], config_dir=conf)


def test_wandb_logger_is_offline_without_an_api_key(compose_cfg, tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from lima_recipes.train.csv_log import AppendingCSVLogger
    from lima_recipes.train.run import build_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose_cfg("logger=wandb", "run.name=lima7b")
    csv_logger, wandb_logger = build_loggers(cfg, tmp_path, "abc123")
    assert isinstance(csv_logger, CSVLogger) and isinstance(wandb_logger, WandbLogger)
    assert wandb_logger._offline is True
    assert wandb_logger._wandb_init["group"] == "lima7b" and wandb_logger._wandb_init["id"] == "abc123"
    assert [type(x) for x in build_loggers(compose_cfg("logger=csv"), tmp_path, "x")] == [AppendingCSVLogger]
    # a sweep's job: the swept values become tags and a config entry, the experiment the group
    sweep = {"name": "lima7b", "dir": "outputs/lima7b", "job": 3, "swept": {"data.max_examples": "2000", "run.seed": "2"}}
    _, swept_logger = build_loggers(cfg, tmp_path, "abc123", sweep)
    assert {"data.max_examples=2000", "run.seed=2", "lima7b"} <= set(swept_logger._wandb_init["tags"])
    assert swept_logger._wandb_init["config"]["sweep"] == sweep and swept_logger._wandb_init["group"] == "lima7b"


def test_misspelt_nested_keys_of_other_apps_get_suggestions_too():
    from lima_recipes.config.compose import suggest_key

    assert suggest_key("curate.sources.wikihow.pth") == "curate.sources.wikihow.path"
    assert suggest_key("generation.top_pp") == "generation.top_p"


@pytest.mark.parametrize("group,option", [(g, o) for g in ("eval", "judge", "prompts") for o in options(g)])
def test_eval_app_options_compose(group, option):
    from lima_recipes.config import compose

    cfg = compose([f"{group}={option}"], config_name="eval")
    assert cfg[group].name == option


def test_after_training_settings_keep_the_run_id_and_are_checked_before_training(compose_cfg, monkeypatch):
    from lima_recipes.config.resolvers import config_hash

    assert config_hash(compose_cfg()) == config_hash(compose_cfg("eval=dev_select", "judge=openai", "prompts.max_prompts=3"))
    validate(compose_cfg("eval=dev_select", "judge=none"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    validate(compose_cfg("eval=generate"))  # needs no judge
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("eval=pairwise"))
    assert "after training eval=generate, likert, absolute or dev_select (or none) runs" in str(err.value)
    with pytest.raises(ConfigError, match="eval=likert after training needs a judge"):
        validate(compose_cfg("eval=likert"))
    with pytest.raises(ConfigError, match="judge=openai needs an API key: set OPENAI_API_KEY"):
        validate(compose_cfg("eval=likert", "judge=openai"))
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("eval=dev_select", "judge=openai", "eval.epochs=[4,5]"))
    assert "epochs [4] are not in trainer.checkpoint_epochs" in str(err.value) and "set OPENAI_API_KEY" in str(err.value)


def test_eval_keys_get_suggestions():
    from lima_recipes.config.compose import suggest_key

    assert suggest_key("judge.concurency") == "judge.concurrency"
    assert suggest_key("eval.intersekt") == "eval.intersect"


def test_a_misspelt_experiment_is_an_error_not_the_default_run():
    from lima_recipes.config import compose

    with pytest.raises(ConfigError, match=r"unknown option 'ablation_smok' for config group 'experiment'.*did you mean 'experiment=ablation_smoke'"):
        compose(["experiment=ablation_smok"])
