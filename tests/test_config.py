"""Config: defaults, TOML file, dotted overrides; unknown keys and wrong types are errors naming the key."""

import dataclasses

import pytest

from mentor.config import ConfigError, RunConfig, describe, from_dict, load_config, to_dict, with_overrides


def test_defaults():
    cfg = load_config()
    assert cfg.student.lora.rank == 32 and cfg.student.batch_size == 4 and cfg.loop.rounds == 3


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n[student]\nepochs = 1\n[student.lora]\nrank = 8\ntarget_modules = ["q_proj"]\n')
    cfg = load_config(path, ["student.lora.rank=4", "teacher.name=reference", "loop.max_minutes=2.5",
                             "student.lora.target_modules=q_proj,v_proj"])
    assert cfg.seed == 3 and cfg.student.epochs == 1.0 and cfg.student.lora.rank == 4
    assert cfg.loop.max_minutes == 2.5 and cfg.student.lora.target_modules == ("q_proj", "v_proj")


@pytest.mark.parametrize("override, message", [
    ("student.rnak=3", "unknown key.*student.rnak"),
    ("loop.rounds=three", "'loop.rounds' must be int"),
    ("student.lora=3", "'student.lora' must be a table"),
    ("novalue", "must look like section.key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_every_bad_value_is_listed_at_once_type_and_range_alike():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["student.epochs=abc", "student.dtype=float31", "loop.patience=x",
                               "student.lora.target_modules=[1]", "loop.rounds=2"])
    lines = str(err.value).splitlines()
    assert lines[0] == "config: 4 bad value(s):"
    assert sorted(line.strip() for line in lines[1:]) == sorted([
        "'student.epochs' must be float, got 'abc'", "'loop.patience' must be int, got 'x'",
        "'student.lora.target_modules' must be a list of strings",
        "'student.dtype' is 'float31'; choose one of auto, float32, bfloat16, float16"])


def test_overrides_on_a_stored_config_keep_everything_else_and_are_checked():
    stored = load_config("large-data", ["seed=5"])
    changed = with_overrides(stored, ["student.learning_rate=2e-4", "student.lora.layers=10"])
    assert changed.student.learning_rate == 2e-4 and changed.student.lora.layers == 10
    assert changed.seed == 5 and changed.teacher.new_examples == stored.teacher.new_examples == 480
    assert changed.student.lora.target_modules == stored.student.lora.target_modules
    with pytest.raises(ConfigError, match="'student.epochs' is -1.0; it must be more than 0"):
        with_overrides(stored, ["student.epochs=-1"])
    with pytest.raises(ConfigError, match="did you mean student.epochs"):
        with_overrides(stored, ["student.epoch=1"])


def test_bad_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[loop\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_round_trip_and_reference():
    cfg = load_config(overrides=["student.lora.rank=7"])
    assert from_dict(RunConfig, to_dict(cfg)) == cfg
    keys = [k for k, _, _ in describe()]
    assert "student.lora.rank" in keys and all(h for _, _, h in describe())


def test_a_saved_config_from_before_a_setting_existed_reads_as_the_old_behaviour():
    from mentor.config import stored_config

    saved = to_dict(load_config(overrides=["student.lora.layers=15", "student.epochs=2"]))
    assert stored_config(saved, "run 1") == load_config(overrides=["student.lora.layers=15", "student.epochs=2"])
    del saved["student"]["lora"]["layers"], saved["loop"]["explain_sample"]
    old = stored_config(saved, "run 1")
    assert old.student.lora.layers == 0 and RunConfig().student.lora.layers == 15  # every layer, as then
    assert old.loop.explain_sample == RunConfig().loop.explain_sample and old.student.epochs == 2
    saved["student"]["lora"]["rnak"] = 4
    with pytest.raises(ConfigError, match="run 1: unknown key.*student.lora.rnak"):
        stored_config(saved, "run 1")


def test_recipes_load_by_name_and_sit_under_the_users_settings(tmp_path):
    from mentor.config import recipe_names

    assert "large-data" in recipe_names()
    for name in recipe_names():
        config = load_config(name)
        assert config.recipe == name and config != RunConfig(recipe=name), f"recipe {name} changes nothing"
    plain, large = RunConfig(), load_config(overrides=["recipe=large-data"])
    assert large.teacher.new_examples != plain.teacher.new_examples and large.loop.calibration > 0
    mine = tmp_path / "mine.toml"
    mine.write_text('recipe = "large-data"\n[teacher]\nnew_examples = 7\n')
    config = load_config(mine, ["student.epochs=9"])
    assert (config.teacher.new_examples, config.student.epochs) == (7, 9)  # the user's file and overrides win
    assert config.student.learning_rate == large.student.learning_rate  # the rest comes from the recipe
    assert load_config(overrides=["recipe=none"]) == RunConfig(recipe="none")
    with pytest.raises(ConfigError, match="not one of: auto, none, demo, large-data"):
        load_config(overrides=["recipe=huge"])


def test_recipe_auto_follows_the_size_of_the_data_source(tmp_path):
    from mentor.config import AUTO_MIN_POOL
    from mentor.runner import configure
    from tests.conftest import make_examples, write_jsonl

    big = write_jsonl(tmp_path / "big.jsonl", make_examples(AUTO_MIN_POOL // 4, "big"))
    small = write_jsonl(tmp_path / "small.jsonl", make_examples(AUTO_MIN_POOL // 4 - 1, "small"))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", make_examples(2, "holdout", seed=1))
    chosen = configure(None, [f"data.pool={big}", f"data.holdout={holdout}"], tmp_path)
    assert chosen == load_config(overrides=[f"data.pool={big}", f"data.holdout={holdout}", "recipe=large-data"])
    assert configure(None, [f"data.pool={small}", f"data.holdout={holdout}"], tmp_path).recipe == "none"
    kept = configure(None, [f"data.pool={big}", f"data.holdout={holdout}", "recipe=none", "loop.rounds=5"], tmp_path)
    assert kept == RunConfig(recipe="none", data=kept.data, loop=dataclasses.replace(RunConfig().loop, rounds=5))


def test_recipe_auto_calibrates_the_severity_demo_on_the_bundled_data(tmp_path):
    from mentor.runner import configure
    from tests.conftest import make_examples, write_jsonl

    demo = configure(None, [], tmp_path)
    assert demo.recipe == "demo" and demo.loop.calibration == 80 and demo == load_config(overrides=["recipe=demo"])
    assert configure(None, ["loop.calibration=0"], tmp_path).loop.calibration == 0  # your settings sit on top
    assert configure(None, ["recipe=none"], tmp_path).loop.calibration == 0
    assert configure(None, ["task=explain"], tmp_path).recipe == "none"  # the explain demo is measured without it
    own = write_jsonl(tmp_path / "own.jsonl", make_examples(30, "own"))
    assert configure(None, [f"data.pool={own}"], tmp_path).recipe == "none"  # your data: the plain defaults


@pytest.mark.parametrize("override, says", [
    ("loop.metric=f1", "'loop.metric' is 'f1'; choose one of macro_f1, accuracy"),
    ("student.micro_batch_size=0", "'student.micro_batch_size' is 0; it must be at least 1"),
    ("student.learning_rate=-1", "'student.learning_rate' is -1.0; it must be at least 0"),
    ("student.dtype=fp8", "'student.dtype' is 'fp8'; choose one of auto, float32, bfloat16, float16"),
    ("teacher.explore=1.5", "'teacher.explore' is 1.5; it must be at most 1"),
    ("teacher.probe=-1", "'teacher.probe' is -1; it must be at least 0"),
    ("loop.patience=0", "'loop.patience' is 0; it must be at least 1"),
    ("student.lora.rank=0", "'student.lora.rank' is 0; it must be at least 1"),
    ("student.model=./no/such/model", "'student.model' is './no/such/model': no such folder; use 'bundled'"),
    ("student.report_to=tensorboard,neptunee", "'student.report_to' has 'neptunee'; choose from tensorboard, mlflow, wandb"),
])
def test_out_of_range_values_are_refused_before_a_run_is_recorded(override, says, tmp_path, home):
    from mentor.runner import configure, open_store

    with pytest.raises(ConfigError) as err:
        configure(None, [override], home)
    assert says in str(err.value)
    assert not (home / "mentor.db").exists() or not open_store(home).runs()


def test_every_bad_value_is_listed_at_once():
    with pytest.raises(ConfigError, match="2 bad value"):
        load_config(overrides=["loop.metric=f1", "student.threads=-2"])


def test_student_model_paths_and_hub_ids(tmp_path):
    from mentor.config import StudentConfig, check

    (tmp_path / "model").mkdir()
    assert "no config.json" in _problem(check, StudentConfig(model=str(tmp_path / "model")))
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "weights.gguf").write_text("")
    assert "that is a file" in _problem(check, StudentConfig(model=str(tmp_path / "weights.gguf")))
    for fine in (str(tmp_path / "model"), f"hf:{tmp_path / 'model'}", "HuggingFaceTB/SmolLM2-135M", "gpt2", "bundled",
                 "scripted", "openai:gpt-4o-mini"):
        assert check(StudentConfig(model=fine)).model == fine  # a hub id is only known once it is downloaded


def _problem(check, config) -> str:  # noqa: ANN001
    with pytest.raises(ConfigError) as err:
        check(config)
    return str(err.value)
