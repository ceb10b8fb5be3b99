"""Config: defaults, TOML file, dotted overrides; unknown keys and wrong types are errors naming the key."""

from pathlib import Path

import pytest

from mentor.config import ConfigError, RunConfig, describe, from_dict, load_config, to_dict


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


def test_shipped_config_files_load():
    files = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))
    assert files, "configs/ should ship at least one recipe"
    for path in files:
        config = load_config(path)
        assert config != RunConfig(), f"{path.name} changes nothing"
