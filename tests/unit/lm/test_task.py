"""QLoRA on a tiny random Llama on the CPU: 4-bit loading, training, adapter-only exchange, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors
import torch

from hydrafed.errors import AggregationError, ConfigError
from hydrafed.spec import TrainingSpec
from hydrafed.worker.lm import task as lm_task
from hydrafed.worker.lm.task import LmTask, build_lm_task

pytestmark = pytest.mark.unit


def _spec(model_dir: Path, **extra: object) -> TrainingSpec:
    fields: dict[str, object] = {
        "model": "hf-local",
        "modelPath": str(model_dir),
        "dataset": "text",
        "localSteps": 2,
        "batchSize": 4,
        "learningRate": 0.01,
        "sampleLimit": 120,
        "partition": "dirichlet:0.5",
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0},
    }
    fields.update(extra)
    return TrainingSpec.model_validate(fields)


@pytest.fixture(scope="module")
def task(tiny_llama: Path) -> LmTask:
    return build_lm_task(_spec(tiny_llama), party_index=1, parties=3)


def test_base_is_4bit_nf4_with_double_quantization(task: LmTask) -> None:
    import bitsandbytes as bnb

    layer = task.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert layer.weight.quant_state.quant_type == "nf4"
    assert layer.weight.quant_state.nested  # double quantization
    assert layer.compute_dtype == torch.float32  # CPU


def test_training_after_evaluation_moves_every_adapter(task: LmTask) -> None:
    # Prepare: evaluation first (it used to repack the 4-bit weights into a no-backward layout)
    task.evaluate()
    before = task.exchanged_state()
    # Execute
    result = task.train_round(1)
    after = task.exchanged_state()
    # Assert: every B left zero, so gradients reached every adapter
    assert result.samples == task.samples > 0
    assert result.metrics["steps"] == 2.0
    assert all(float(after[k].abs().sum()) > 0 for k in after if ".lora_B." in k)
    assert all(not torch.equal(before[k], after[k]) for k in after)


def test_only_adapter_tensors_are_exchanged_and_they_serialise_as_safetensors(
    task: LmTask, tmp_path: Path
) -> None:
    state = task.exchanged_state()
    path = tmp_path / "update.safetensors"
    task.save_adapter(path)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        keys = sorted(handle.keys())
    assert keys == sorted(state)
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys} == {"q_proj", "v_proj"}
    base_bytes = sum(
        p.stat().st_size for p in Path(task.model.base_model.model.config._name_or_path).glob("*.safetensors")
    )
    assert path.stat().st_size < base_bytes


def test_resume_from_an_adapter_checkpoint_gives_the_same_model(tiny_llama: Path, tmp_path: Path) -> None:
    # Prepare: party 0 trains a round and checkpoints
    spec = _spec(tiny_llama)
    first = build_lm_task(spec, party_index=0, parties=3)
    first.train_round(1)
    first.save_adapter(tmp_path / "adapter.safetensors")
    # Execute: a restarted party loads the checkpoint
    resumed = build_lm_task(spec, party_index=0, parties=3)
    fresh_metrics = resumed.evaluate()
    resumed.load_adapter(tmp_path / "adapter.safetensors")
    # Assert
    assert all(torch.equal(first.exchanged_state()[k], v) for k, v in resumed.exchanged_state().items())
    assert resumed.evaluate() == pytest.approx(first.evaluate(), rel=1e-6)
    assert resumed.evaluate()["loss"] != pytest.approx(fresh_metrics["loss"], rel=1e-9)


def test_parties_start_from_the_same_adapters_and_hold_disjoint_shards(
    tiny_llama: Path, task: LmTask
) -> None:
    other = build_lm_task(_spec(tiny_llama), party_index=2, parties=3)
    start = build_lm_task(_spec(tiny_llama), party_index=1, parties=3).exchanged_state()
    assert all(torch.equal(start[k], v) for k, v in other.exchanged_state().items())
    mine = {tuple(b.tolist()) for b in task._train}
    assert not mine & {tuple(b.tolist()) for b in other._train}
    assert torch.equal(task._test, other._test)


def test_wrong_adapter_state_is_refused_naming_the_key(task: LmTask) -> None:
    state = task.exchanged_state()
    key = next(iter(state))
    with pytest.raises(AggregationError, match="missing"):
        task.load_exchanged_state({k: v for k, v in state.items() if k != key})
    with pytest.raises(AggregationError, match=key.replace(".", r"\.")):
        task.load_exchanged_state({**state, key: state[key][:, :1]})


def test_bad_config_errors_name_the_field(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training.dataset to text"):
        build_lm_task(_spec(tiny_llama, dataset="mnist"), party_index=0, parties=3)
    with pytest.raises(ConfigError, match="targetModules"):
        build_lm_task(_spec(tiny_llama, lora={"targetModules": ["nope_proj"]}), party_index=0, parties=3)
    with pytest.raises(ConfigError, match="modelPath"):
        build_lm_task(_spec(tmp_path), party_index=0, parties=3)
    with pytest.raises(ConfigError, match="not a language model"):
        lm_task.model_dir_for(TrainingSpec(), None)
