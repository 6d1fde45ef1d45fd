"""Exact LoRA aggregation: average the products B·A, then re-factorise to the rank by SVD.

FedAvg of the A and B matrices separately gives ``mean(B) · mean(A)``, which is not the mean of
the parties' updates ``mean(B·A)``. This aggregator forms each adapter's weighted mean product
``ΔW = Σ w_i B_i A_i`` in float64 and returns the best rank-r factors of it (Eckart–Young):
``B = U_r √S_r`` and ``A = √S_r V_rᵀ``. When the mean product has rank ≤ r (e.g. parties that
share A, or a single party) the result is exact; otherwise it is the closest rank-r update, and
the dropped energy is reported in the state as ``<module>.residual`` (relative Frobenius norm).

Tensors that are not a LoRA A/B pair (e.g. a trained classifier head) are averaged by FedAvg.
Same inputs give bit-identical results on every party: updates are sorted by party id and the
SVD runs in float64 on the CPU.

Public API::

    lora_pairs(keys) -> dict[str, tuple[str, str]]     # module prefix -> (A key, B key)
    lora_exact(updates) -> (tensors, residuals)
    LoraExact (Aggregator, name "lora-exact")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from hydrafed.errors import AggregationError
from hydrafed.worker.aggregation import AggregationResult, Update, check_compatible
from hydrafed.worker.aggregation.fedavg import fedavg

_A = ".lora_A."
_B = ".lora_B."


def lora_pairs(keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Pair every ``…lora_A.<name>`` key with its ``…lora_B.<name>`` twin, by module prefix.

    Raises AggregationError naming the key when an A has no B or the other way round.
    """
    key_set = set(keys)
    pairs: dict[str, tuple[str, str]] = {}
    for key in sorted(key_set):
        if _A in key:
            twin = key.replace(_A, _B, 1)
            if twin not in key_set:
                raise AggregationError(f"LoRA tensor {key!r} has no matching B tensor {twin!r}")
            pairs[key.replace(_A, ".", 1)] = (key, twin)
        elif _B in key and key.replace(_B, _A, 1) not in key_set:
            raise AggregationError(f"LoRA tensor {key!r} has no matching A tensor")
    return pairs


def _factorise(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Rank-``rank`` factors (A, B) of ``delta`` and the relative Frobenius norm left out."""
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    root = torch.sqrt(s[:rank])
    b = u[:, :rank] * root
    a = root[:, None] * vh[:rank]
    total = float(torch.linalg.vector_norm(s))
    dropped = float(torch.linalg.vector_norm(s[rank:])) if s.numel() > rank else 0.0
    return a, b, (dropped / total if total > 0 else 0.0)


def lora_exact(updates: Sequence[Update]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The aggregated tensors and, per adapted module, the relative residual of the rank cut."""
    ordered = [u for u in check_compatible(updates) if u.samples]  # 0 samples: left out
    keys = list(ordered[0].tensors)
    pairs = lora_pairs(keys)
    if not pairs:
        raise AggregationError(
            "lora-exact found no LoRA tensors (keys with '.lora_A.'/'.lora_B.'): use fedavg for full models"
        )
    total = float(sum(u.samples for u in ordered))
    result: dict[str, torch.Tensor] = {}
    residuals: dict[str, float] = {}
    for module, (key_a, key_b) in pairs.items():
        ref_a, ref_b = ordered[0].tensors[key_a], ordered[0].tensors[key_b]
        if ref_a.dim() != 2 or ref_b.dim() != 2 or ref_b.shape[1] != ref_a.shape[0]:
            raise AggregationError(
                f"LoRA pair {key_a!r} {tuple(ref_a.shape)} / {key_b!r} {tuple(ref_b.shape)} "
                "is not B (out x r) times A (r x in)"
            )
        rank = int(ref_a.shape[0])
        delta = torch.zeros(ref_b.shape[0], ref_a.shape[1], dtype=torch.float64)
        for update in ordered:
            a = update.tensors[key_a].detach().to("cpu", torch.float64)
            b = update.tensors[key_b].detach().to("cpu", torch.float64)
            delta += (b @ a) * (update.samples / total)
        a_new, b_new, residuals[module] = _factorise(delta, rank)
        result[key_a] = a_new.to(ref_a.dtype).contiguous()
        result[key_b] = b_new.to(ref_b.dtype).contiguous()
    rest = [k for k in keys if k not in result]
    if rest:
        plain = [Update(u.party, u.samples, {k: u.tensors[k] for k in rest}) for u in ordered]
        result.update(fedavg(plain))
    return {k: result[k] for k in sorted(result)}, residuals


class LoraExact:
    """Aggregator ``lora-exact``: exact mean of B·A re-factorised to the LoRA rank."""

    name = "lora-exact"

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """Exact LoRA aggregation of ``updates``; the state holds each module's rank-cut residual."""
        tensors, residuals = lora_exact(updates)
        info = {f"{m}.residual": torch.tensor(r, dtype=torch.float64) for m, r in residuals.items()}
        return AggregationResult(tensors, info)
