"""Schema errors name the key and what is wrong in one line, with the closest allowed key for a typo."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from unlearning.config.schema import schema_problem

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
MODEL = next(iter(CONFIG["models"]))


def problem_after(change) -> str | None:  # noqa: ANN001
    config = copy.deepcopy(CONFIG)
    change(config)
    return schema_problem(config, SCHEMA)


def test_the_embedded_default_and_every_shipped_config_are_valid() -> None:
    assert schema_problem(CONFIG, SCHEMA) is None
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert schema_problem(yaml.safe_load(path.read_text()), SCHEMA) is None, path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(scroe={}), "config: top level: unknown key 'scroe' (allowed: attacks, data, describe, "
         "export, generate, models, pairs, perturb, prompt, score, seed, seeds, select, train, unlearn); did you mean "
         "'score' for 'scroe'?"),
        # train: is an allOf of the shared training keys and its defaults (unevaluatedProperties)
        (lambda c: c["train"].update(learning_rte=1e-4), "did you mean 'learning_rate' for 'learning_rte'?"),
        (lambda c: c["train"]["lora"].update(rr=4), "config: train.lora: unknown key 'rr' (allowed: alpha, dropout, "
         "init, layers, quantization_aware, r, target_modules); did you mean 'r' for 'rr'?"),
        (lambda c: c["models"][MODEL].update(train={"epoch": 2}),
         f"config: models.{MODEL}.train: unknown key 'epoch' (allowed: adapter, batch_size, epochs,"),
        (lambda c: c["models"][MODEL]["resources"].update(mem_mbb=1), "did you mean 'mem_mb' for 'mem_mbb'?"),
    ],
)  # fmt: skip
def test_an_unknown_key_is_named_with_the_allowed_keys_and_the_closest(change, expected: str) -> None:  # noqa: ANN001
    message = problem_after(change)
    assert message is not None and expected in message
    assert "\n" not in message and "$defs" not in message


def test_two_unknown_keys_and_one_without_a_close_match() -> None:
    message = problem_after(lambda c: c["train"].update(zzqq=1, epoch=2))
    assert message.startswith("config: train: unknown keys 'epoch', 'zzqq' (allowed: adapter, batch_size,")
    assert message.endswith("; did you mean 'epochs' for 'epoch'?")
    assert "did you mean" not in problem_after(lambda c: c["train"].update(zzqq=1))


def test_a_wrong_value_inside_train_is_reported_not_the_unevaluated_keys_it_causes() -> None:
    assert problem_after(lambda c: c["train"].update(batch_size=0)) == (
        "config: train.batch_size: 0 is less than the minimum of 1"
    )
    assert problem_after(lambda c: c.pop("data")) == "config: top level: 'data' is a required property"


def test_lora_target_modules_takes_a_preset_or_module_names_and_lists_the_presets() -> None:
    def targets(value):  # noqa: ANN001, ANN202
        return lambda c: c["unlearn"].update(x={"method": "npo", "lora": {"target_modules": value}})

    for value in ("all-linear", "attention", "mlp", ["q_proj", "v_proj"]):
        assert problem_after(targets(value)) is None, value
    assert problem_after(targets("attn")) == (
        "config: unlearn.x.lora.target_modules: 'attn' is not one of ['all-linear', 'attention', 'mlp']"
    )
    assert problem_after(targets([])) == "config: unlearn.x.lora.target_modules: [] should be non-empty"
    assert problem_after(targets(3)) == "config: unlearn.x.lora.target_modules: 3 is not of type 'string', 'array'"
