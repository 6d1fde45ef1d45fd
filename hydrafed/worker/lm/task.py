"""``LocalTask`` for causal language models: QLoRA on a text shard, adapters as the exchange.

``build_lm_task`` is what ``hydrafed.worker.tasks.build_task`` calls for the models
``smollm2-135m`` and ``hf-local``. Every party loads the same base model and, from the spec's
seed, the same initial adapters; it tokenises the corpus into blocks of ``SEQ_LEN`` tokens,
takes the common held-out set and keeps its own shard. Local training is AdamW (fresh every
round) on the adapters at ``learningRate * lrDecay**(round-1)`` for ``localSteps`` steps (or
``localEpochs`` passes over the shard). Evaluation on at most ``EVAL_BLOCKS`` held-out blocks
reports next-token accuracy, mean token loss and perplexity.

Public API::

    SEQ_LEN, EVAL_BLOCKS
    model_dir_for(spec, cache) -> Path
    LmTask(model_dir, train_blocks, test_blocks, spec, *, shuffle_seed, device=None)
    build_lm_task(spec, *, party_index, parties, cache=None) -> LmTask   # parties == 0: pooled
    task.samples, task.save_adapter(path), task.load_adapter(path)
    ... plus the LocalTask protocol (exchanged_state, load_exchanged_state, train_round, evaluate)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from hydrafed.errors import ConfigError
from hydrafed.spec import DatasetName, LoraSpec, ModelName, TrainingSpec
from hydrafed.worker.lm import model as lm_model
from hydrafed.worker.lm import text
from hydrafed.worker.task import Tensors, TrainResult

SEQ_LEN = 128
"""Tokens per training and evaluation block."""
EVAL_BLOCKS = 24
"""Held-out blocks used by ``evaluate`` (the first ones of the common test set): bounded CPU time."""


def default_cache() -> Path:
    """``$HYDRAFED_CACHE`` or ``~/.cache/hydrafed``, as the Makefile sets it."""
    return Path(os.environ.get("HYDRAFED_CACHE") or Path.home() / ".cache" / "hydrafed")


def model_dir_for(spec: TrainingSpec, cache: Path | None) -> Path:
    """The local base-model directory of ``spec.model`` (SmolLM2 is converted on first use)."""
    if spec.model == ModelName.SMOLLM2_135M:
        from hydrafed.worker.lm.smollm2 import ensure_smollm2

        return ensure_smollm2(cache or default_cache())
    if spec.model == ModelName.HF_LOCAL:
        assert spec.model_path is not None  # the spec's validator requires it
        path = Path(spec.model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"training.modelPath {path} is not a Hugging Face model directory (no config.json): "
                "point it at a directory written by save_pretrained, with its tokenizer"
            )
        return path
    raise ConfigError(f"model {spec.model.value!r} is not a language model: choose smollm2-135m or hf-local")


class LmTask:
    """One party's 4-bit base model with LoRA adapters, its text blocks and optimiser settings."""

    def __init__(
        self,
        model_dir: Path,
        train_blocks: torch.Tensor,
        test_blocks: torch.Tensor,
        spec: TrainingSpec,
        *,
        shuffle_seed: int,
        device: torch.device | None = None,
    ) -> None:
        if train_blocks.shape[0] == 0:
            raise ConfigError("this party's text shard is empty: use fewer parties or more text")
        self.spec = spec
        self.lora: LoraSpec = spec.lora or LoraSpec()
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model: Any = lm_model.load_lora_model(model_dir, self.lora, device=self.device, seed=spec.seed)
        self.shuffle_seed = shuffle_seed
        self._train = train_blocks
        self._test = test_blocks[:EVAL_BLOCKS]

    @property
    def samples(self) -> int:
        """Training blocks in this party's shard (its FedAvg weight)."""
        return int(self._train.shape[0])

    def exchanged_state(self) -> Tensors:
        """Only the adapter tensors: the base model never leaves the party."""
        return lm_model.adapter_state(self.model)

    def load_exchanged_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the aggregated adapters; the base model is untouched."""
        lm_model.load_adapter_state(self.model, state)

    def save_adapter(self, path: Path) -> None:
        """Checkpoint the adapters as safetensors (what a restarted party resumes from)."""
        safetensors.torch.save_file(self.exchanged_state(), str(path), metadata={"format": "pt"})

    def load_adapter(self, path: Path) -> None:
        """Resume from an adapter checkpoint written by ``save_adapter`` (or a peer's update)."""
        self.load_exchanged_state(safetensors.torch.load_file(str(path)))

    def _steps(self) -> int:
        if self.spec.local_steps is not None:
            return self.spec.local_steps
        return self.spec.local_epochs * math.ceil(self.samples / self.spec.batch_size)

    def train_round(self, round_no: int) -> TrainResult:
        """AdamW on the adapters for this round's steps, from the loaded global adapters."""
        started = time.perf_counter()
        lr = self.spec.learning_rate * self.spec.lr_decay ** (round_no - 1)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=self.spec.weight_decay)
        generator = torch.Generator().manual_seed(self.shuffle_seed * 100_003 + round_no)
        torch.manual_seed(self.shuffle_seed * 100_003 + round_no)  # LoRA dropout masks
        self.model.train()
        order = torch.randperm(self.samples, generator=generator)
        position, losses = 0, []
        for _ in range(self._steps()):
            if position >= self.samples:
                order, position = torch.randperm(self.samples, generator=generator), 0
            batch = self._train[order[position : position + self.spec.batch_size]].to(self.device)
            position += self.spec.batch_size
            loss = self.model(input_ids=batch, labels=batch).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        return TrainResult(
            samples=self.samples,
            seconds=time.perf_counter() - started,
            metrics={"loss": sum(losses) / len(losses), "steps": float(len(losses))},
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Next-token accuracy, mean token loss and perplexity on the held-out blocks."""
        self.model.eval()
        loss_sum, correct, tokens = 0.0, 0, 0
        for start in range(0, self._test.shape[0], self.spec.batch_size):
            batch = self._test[start : start + self.spec.batch_size].to(self.device)
            logits = self.model(input_ids=batch).logits[:, :-1].float()
            target = batch[:, 1:]
            loss_sum += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
                )
            )
            correct += int((logits.argmax(-1) == target).sum())
            tokens += target.numel()
        loss = loss_sum / tokens
        return {"accuracy": correct / tokens, "loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def build_lm_task(spec: TrainingSpec, *, party_index: int, parties: int, cache: Path | None = None) -> LmTask:
    """Party ``party_index`` of ``parties`` (0-based); ``parties == 0`` pools all training text.

    The model comes from ``spec.model`` (smollm2-135m, or hf-local with ``modelPath``); the text
    is the bundled corpus, or ``datasetPath`` (a folder of .txt files) when ``dataset`` is text.
    """
    import transformers

    if spec.dataset != DatasetName.TEXT:
        raise ConfigError(
            f"model {spec.model.value!r} trains on text, not {spec.dataset.value!r}: "
            "set training.dataset to text"
        )
    if parties > 0 and not 0 <= party_index < parties:
        raise ConfigError(f"party index {party_index} is outside 0..{parties - 1}")
    model_dir = model_dir_for(spec, cache)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    documents = text.load_documents(Path(spec.dataset_path).expanduser() if spec.dataset_path else None)
    blocks, labels = text.tokenize_blocks(
        documents, lambda s: list(tokenizer(s, add_special_tokens=False)["input_ids"]), SEQ_LEN
    )
    split = text.split_blocks(
        blocks,
        labels,
        parties=max(parties, 1),
        partition=spec.partition,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        sample_limit=spec.sample_limit,
    )
    shard = split.train[party_index] if parties > 0 else split.train[0]
    return LmTask(
        model_dir, shard, split.test, spec, shuffle_seed=spec.seed * 1009 + party_index + (parties > 0)
    )
