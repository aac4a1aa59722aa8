"""K LoRA adapters over one frozen base model, applied together in one forward pass.

The batch is stacked adapter-major: rows ``k*B .. (k+1)*B - 1`` belong to adapter ``k``. Each adapted
linear layer computes, for adapter ``k`` with input rows ``x_k`` (shape [B*T, in]),

    y_k = W x_k + s * B_k (A_k x_k)          s = lora_alpha / r

for all active adapters at once with two batched matmuls over the stacked ``[K, r, in]`` and
``[K, out, r]`` weights. Adapters may differ in rank and alpha (a search over them): each keeps its own
``[r_k, in]`` and ``[out, r_k]`` parameters, stacked with zero rows of A and zero columns of B up to the
largest active rank. The padding adds only products with zero, ``B_k A_k = [B_k 0][A_k; 0]``, and its
gradients are zero, so each adapter trains exactly as at its own rank; ``s_k = alpha_k / r_k`` scales
each adapter's update on its own. Layers below the lowest adapted layer see the batch once (B rows): a forward
pre-hook repeats the hidden states K times on entering the first adapted layer
(``evalgate.modeling.shared_layers``), so that part of the model is computed once for every rate.
Each adapter keeps its own parameters (one optimizer group each); they are stacked at every forward,
which costs a copy of r x (in + out) numbers per layer.

The modules, scaling and initial weights are those peft would create for the sweep's ``LoraConfig``
(taken from a peft model built once and unloaded), and ``export_adapter`` writes a standard PEFT
adapter folder, so the result loads with ``PeftModel.from_pretrained`` like any other adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import PreTrainedModel

from evalgate.modeling.shared_layers import BatchExpander, decoder_layers, lowest_layer_holding
from evalgate.sweep.config import SweepConfig
from evalgate.sweep.training.peft_trainer import attach_adapter

ADAPTER_NAME = "default"


class FusedLoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus one LoRA update per adapter, applied to the stacked batch."""

    def __init__(
        self, base: nn.Linear, initial: Sequence[tuple[torch.Tensor, torch.Tensor, float]], dropout: float
    ):
        """``initial``: per adapter, its initial A [r, in], B [out, r] and scaling alpha / r."""
        super().__init__()
        self.base = base
        self.scalings = [scaling for _, _, scaling in initial]
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_a = nn.ParameterList(nn.Parameter(a.detach().float().clone()) for a, _, _ in initial)
        self.lora_b = nn.ParameterList(nn.Parameter(b.detach().float().clone()) for _, b, _ in initial)
        self.active: list[int] = list(range(len(initial)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [K_active * B, T, in] adapter-major; returns [K_active * B, T, out]."""
        out = self.base(x)
        count = len(self.active)
        rank = max(self.lora_a[k].shape[0] for k in self.active)
        stacked_a = torch.stack([_padded(self.lora_a[k], rank, 0) for k in self.active]).to(x.dtype)
        stacked_b = torch.stack([_padded(self.lora_b[k], rank, 1) for k in self.active]).to(x.dtype)
        rows = self.dropout(x).reshape(count, -1, x.shape[-1])  # [K, B*T, in]
        delta = torch.bmm(
            torch.bmm(rows, stacked_a.transpose(1, 2)), stacked_b.transpose(1, 2)
        )  # [K, B*T, out]
        scalings = {self.scalings[k] for k in self.active}
        if len(scalings) == 1:
            return out + scalings.pop() * delta.reshape(out.shape)
        per_adapter = torch.tensor(
            [self.scalings[k] for k in self.active], dtype=delta.dtype, device=delta.device
        )
        return out + (per_adapter.view(count, 1, 1) * delta).reshape(out.shape)


def _padded(weight: torch.Tensor, rank: int, dim: int) -> torch.Tensor:
    """``weight`` with zeros appended along ``dim`` (0: rows of A, 1: columns of B) up to ``rank``."""
    missing = rank - weight.shape[dim]
    if missing == 0:
        return weight
    return F.pad(weight, (0, missing) if dim == 1 else (0, 0, 0, missing))


@dataclass
class FusedAdapters:
    """The fused modules installed in a base model, by their module name."""

    modules: dict[str, FusedLoraLinear]
    expander: BatchExpander
    count: int

    def parameters_of(self, adapter: int) -> list[nn.Parameter]:
        """Every trainable tensor of one adapter (its optimizer group)."""
        return [p for m in self.modules.values() for p in (m.lora_a[adapter], m.lora_b[adapter])]

    def set_active(self, adapters: Sequence[int]) -> None:
        """Run only ``adapters`` (in this order) from the next forward on."""
        self.expander.count = len(adapters)
        for module in self.modules.values():
            module.active = list(adapters)

    def state_of(self, adapter: int) -> dict[str, torch.Tensor]:
        """One adapter's weights as ``{module name: tensor}`` with ``.lora_A`` / ``.lora_B`` suffixes."""
        state = {}
        for name, module in self.modules.items():
            state[f"{name}.lora_A"] = module.lora_a[adapter].detach().clone()
            state[f"{name}.lora_B"] = module.lora_b[adapter].detach().clone()
        return state

    def load_state(self, adapter: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, module in self.modules.items():
                module.lora_a[adapter].copy_(state[f"{name}.lora_A"])
                module.lora_b[adapter].copy_(state[f"{name}.lora_B"])


def _lora_layers(peft_model: PeftModel) -> dict[str, LoraLayer]:
    """peft's adapted modules by their name in the base model (``model.layers.N.self_attn.q_proj``)."""
    inner: nn.Module = peft_model.get_base_model()
    return {
        name: module
        for name, module in inner.named_modules()
        if isinstance(module, LoraLayer) and ADAPTER_NAME in module.lora_A
    }


def _weight(layer: LoraLayer, part: str) -> torch.Tensor:
    """The ``lora_A`` or ``lora_B`` weight matrix of the adapter in ``layer``."""
    modules = getattr(layer, part)
    assert isinstance(modules, nn.ModuleDict)
    weight = modules[ADAPTER_NAME].weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _peft_initial_weights(
    base: PreTrainedModel, config: SweepConfig
) -> tuple[PreTrainedModel, dict[str, tuple[torch.Tensor, torch.Tensor, float]]]:
    """peft's seeded initial ``(A, B, scaling)`` per adapted module; gives back the bare base model."""
    peft_model = attach_adapter(base, config)
    weights = {
        name: (
            _weight(layer, "lora_A").detach().clone(),
            _weight(layer, "lora_B").detach().clone(),
            float(layer.scaling[ADAPTER_NAME]),
        )
        for name, layer in _lora_layers(peft_model).items()
    }
    bare: PreTrainedModel = peft_model.unload()
    return bare, weights


def _initial_weights(
    base: PreTrainedModel, configs: Sequence[SweepConfig]
) -> tuple[PreTrainedModel, dict[str, list[tuple[torch.Tensor, torch.Tensor, float]]]]:
    """Per adapted module, each adapter's peft initialisation (one peft model per distinct LoRA
    setting, seeded alike, so an adapter starts exactly as its own peft run would)."""
    by_setting: dict[tuple[int, int], dict[str, tuple[torch.Tensor, torch.Tensor, float]]] = {}
    for config in configs:
        key = (config.lora.r, config.lora.alpha)
        if key not in by_setting:
            base, by_setting[key] = _peft_initial_weights(base, config)
    first = by_setting[(configs[0].lora.r, configs[0].lora.alpha)]
    initial = {name: [by_setting[(c.lora.r, c.lora.alpha)][name] for c in configs] for name in first}
    return base, initial


@contextmanager
def fused_adapters(
    base: PreTrainedModel, configs: Sequence[SweepConfig]
) -> Iterator[tuple[PreTrainedModel, FusedAdapters]]:
    """Install one fused adapter per config (each from peft's seeded init for its rank and alpha) and
    the batch expander; on exit the base model is restored exactly (the original linear modules are
    put back). The configs share everything but the schedule, rank and alpha (``shared_settings``)."""
    base, initial = _initial_weights(base, configs)
    layers = decoder_layers(base)
    if layers is None or not initial:
        raise ValueError(f"{type(base).__name__}: no decoder layers with LoRA targets to fuse")
    modules: dict[str, FusedLoraLinear] = {}
    originals: dict[str, nn.Module] = {}
    for name, weights in initial.items():
        linear = base.get_submodule(name)
        assert isinstance(linear, nn.Linear), name
        fused = FusedLoraLinear(linear, weights, configs[0].lora.dropout)
        fused.to(linear.weight.device)
        originals[name] = linear
        modules[name] = fused
        base.set_submodule(name, fused)
    first = lowest_layer_holding(layers, list(modules.values()))
    assert first is not None
    expander = BatchExpander(list(layers)[first:], len(configs))
    base.train()  # LoRA dropout is active in training mode, as under the transformers Trainer
    try:
        yield base, FusedAdapters(modules, expander, len(configs))
    finally:
        base.eval()
        expander.remove()
        for name, linear in originals.items():
            base.set_submodule(name, linear)


def export_adapter(
    base: PreTrainedModel, config: SweepConfig, state: dict[str, torch.Tensor], folder: Path
) -> PreTrainedModel:
    """Write one adapter's weights as a standard PEFT folder (``adapter_config.json`` and
    ``adapter_model.safetensors``); returns the bare base model."""
    peft_model = attach_adapter(base, config)
    layers = _lora_layers(peft_model)
    with torch.no_grad():
        for name, layer in layers.items():
            _weight(layer, "lora_A").copy_(state[f"{name}.lora_A"])
            _weight(layer, "lora_B").copy_(state[f"{name}.lora_B"])
    peft_model.save_pretrained(str(folder))
    restored: PreTrainedModel = peft_model.unload()
    return restored
