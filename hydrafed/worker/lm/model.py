"""Load a causal LM base in 4-bit NF4 (bitsandbytes) and wrap it with peft LoRA adapters.

The base weights are frozen and quantised with double quantisation; compute runs in bf16 on
CUDA and fp32 on the CPU. Only the adapters train, and only they are ever exchanged: see
``adapter_state``. Gradient checkpointing is switched on for CUDA runs, where activation memory
is what limits the batch; on the CPU it only costs time.

Public API::

    compute_dtype(device) -> torch.dtype
    load_lora_model(model_dir, lora: LoraSpec, *, device, seed) -> PeftModel
    adapter_state(model) -> dict[str, Tensor]        # adapter tensors only, CPU copies, sorted
    load_adapter_state(model, state) -> None
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hydrafed.errors import AggregationError, ConfigError
from hydrafed.spec import LoraSpec
from hydrafed.worker.fit import check_fits


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (tensor cores), fp32 on the CPU (bf16 matmuls are slow there)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _keep_cpu_weights_trainable(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference on the first eval pass.

    bitsandbytes 0.50 converts a Linear4bit's weight in place to an AVX512-BF16 layout the first
    time it runs in eval mode without grad, and from then on uses a kernel that has no backward:
    every later training step would leave the adapters behind it with zero gradients.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def load_lora_model(model_dir: Path, lora: LoraSpec, *, device: torch.device, seed: int) -> Any:
    """The base model from ``model_dir`` (4-bit NF4 if ``lora.quantize_4bit``) with fresh adapters.

    Every party calls this with the same ``seed`` and gets the same initial adapters.
    """
    peft: Any = importlib.import_module("peft")  # untyped libraries: Any keeps mypy --strict useful here
    transformers: Any = importlib.import_module("transformers")

    if not (model_dir / "config.json").is_file():
        raise ConfigError(
            f"{model_dir} is not a Hugging Face model directory (no config.json): "
            "set training.modelPath to a directory written by save_pretrained"
        )
    dtype = compute_dtype(device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if lora.quantize_4bit:
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if device.type == "cuda":
        kwargs["device_map"] = {"": device.index or 0}
    base = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if device.type != "cuda":
        base = base.to(device)
    base.config.use_cache = False
    if lora.quantize_4bit and device.type == "cpu":
        _keep_cpu_weights_trainable(base)
    if lora.quantize_4bit:
        base = peft.prepare_model_for_kbit_training(base, use_gradient_checkpointing=device.type == "cuda")
    elif device.type == "cuda":
        base.gradient_checkpointing_enable()
    # Activations must require grad from the embeddings on: bitsandbytes takes an inference-only
    # kernel (no backward, so adapters behind a 4-bit layer get zero gradients) when they do not.
    base.enable_input_require_grads()
    present = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    unknown = sorted(set(lora.target_modules) - present)
    if unknown:
        raise ConfigError(
            f"lora.targetModules {unknown} are not modules of {model_dir.name}: "
            f"choose from e.g. q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
        )
    config = peft.LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    return peft.get_peft_model(base, config)


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """The adapter tensors (peft names, no adapter name), as detached CPU copies in key order."""
    import peft

    state: dict[str, torch.Tensor] = peft.get_peft_model_state_dict(model)
    return {key: state[key].detach().to("cpu").clone() for key in sorted(state)}


def load_adapter_state(model: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Replace the adapters with ``state`` once it passes ``fit.check_fits`` against the model's."""
    import peft

    check_fits(state, adapter_state(model), whose="the adapter state")
    result = peft.set_peft_model_state_dict(model, dict(state))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise AggregationError(f"peft did not load adapter tensors {sorted(unexpected)}")
