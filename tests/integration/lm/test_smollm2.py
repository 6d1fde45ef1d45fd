"""SmolLM2-135M from the PyPI package, in 4-bit: three parties federate one round in process."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from hydrafed.errors import ConfigError
from hydrafed.spec import TrainingSpec
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.lm import smollm2
from hydrafed.worker.lm.task import LmTask, build_lm_task, default_cache

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tasks() -> list[LmTask]:
    try:
        smollm2.gguf_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(2)
    spec = TrainingSpec.model_validate(
        {
            "model": "smollm2-135m",
            "dataset": "text",
            "localSteps": 1,
            "batchSize": 2,
            "learningRate": 2e-3,
            "partition": "dirichlet:0.5",
            "aggregation": "lora-exact",
            "lora": {"rank": 8},
        }
    )
    return [build_lm_task(spec, party_index=i, parties=3) for i in range(3)]


def test_cached_conversion_is_a_llama_with_eos_as_pad() -> None:
    import transformers

    directory = smollm2.ensure_smollm2(default_cache())
    config = transformers.AutoConfig.from_pretrained(str(directory))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    assert config.model_type == "llama" and config.hidden_size == 576 and config.num_hidden_layers == 30
    assert tokenizer.pad_token == tokenizer.eos_token is not None


def test_one_federated_round_uploads_under_2_percent_and_lowers_perplexity(tasks: list[LmTask]) -> None:
    # Prepare
    base_bytes = sum(p.stat().st_size for p in smollm2.ensure_smollm2(default_cache()).glob("*.safetensors"))
    before = tasks[0].evaluate()
    # Execute: each party trains a step, uploads its adapters, all aggregate exactly
    updates = []
    for index, task in enumerate(tasks):
        result = task.train_round(1)
        blob = safetensors.torch.save(task.exchanged_state())
        assert len(blob) <= 0.02 * base_bytes
        updates.append(Update(f"p{index}", result.samples, safetensors.torch.load(blob)))
    aggregated = get_aggregator("lora-exact").aggregate(updates)
    for task in tasks:
        task.load_exchanged_state(aggregated.tensors)
    # Assert: same adapters everywhere, a model that improved on held-out text
    states = [t.exchanged_state() for t in tasks]
    assert all(torch.equal(states[0][k], s[k]) for s in states[1:] for k in s)
    after = tasks[0].evaluate()
    assert after["perplexity"] < before["perplexity"]
    assert 1.0 < after["perplexity"] < 200.0
