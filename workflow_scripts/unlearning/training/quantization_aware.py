"""Quantization-aware LoRA unlearning: every forward pass in training sees the weights the GGUF export will hold.

A LoRA change smaller than half a quantization step rounds back onto the base weight when the unlearned model is
exported to a quantized GGUF (the quantization attack, :mod:`unlearning.attacks.quantization`). With
``lora.quantization_aware: <GGUF type>``, each adapted linear layer computes its output with the merged weight
quantized and dequantized by the ``gguf`` package's own quantizers (the export's code), ``W_q = Q(W + s·BA)``, and
passes the gradient straight through to ``W + s·BA`` (the straight-through estimator; Bengio et al. 2013,
"Estimating or propagating gradients through stochastic neurons"; the fake-quantization of quantization-aware
training, Jacob et al., CVPR 2018). The loss is then the loss of the model as it will be exported, so training can
only lower it by changes that survive the rounding.

The merge and the quantization run in float32 (the engine loads the model in float32 for this setting: a bf16
base weight is not on the GGUF grid). LoRA dropout does not apply to these layers (the merged weight is used whole).
The quantization runs in numpy on every forward pass: it costs time, not memory (``benchmarks`` and the closing
note give the figure).
"""

from __future__ import annotations

import types

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import InputError


def fake_quantize(weight: torch.Tensor, gguf_type: str) -> torch.Tensor:
    """``weight [out, in]`` quantized to ``gguf_type`` and dequantized again by ``gguf.quants`` (blocks along the
    input dimension, as GGUF stores a linear layer's rows), as float32 on ``weight``'s device."""
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType[gguf_type]
    data = weight.detach().float().cpu().numpy()
    back = quants.dequantize(quants.quantize(data, qtype), qtype)
    return torch.from_numpy(np.ascontiguousarray(back, dtype=np.float32)).to(weight.device)


def _forward(gguf_type: str):  # noqa: ANN202
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # noqa: ANN001, ANN002, ANN003
        if self.disable_adapters or self.merged:
            return self._plain_forward(x, *args, **kwargs)
        base = self.base_layer
        merged = base.weight.float()
        for name in self.active_adapters:
            if name in self.lora_A:
                delta = self.lora_B[name].weight.float() @ self.lora_A[name].weight.float()
                merged = merged + delta * self.scaling[name]
        straight_through = merged + (fake_quantize(merged, gguf_type) - merged).detach()
        bias = base.bias.float() if base.bias is not None else None
        return F.linear(x.float(), straight_through, bias).to(x.dtype)

    return forward


def enable(model: torch.nn.Module, gguf_type: str) -> int:
    """Make every PEFT LoRA linear layer of ``model`` compute with its merged weight fake-quantized to
    ``gguf_type``; returns how many layers. Raises InputError when the model has no LoRA linear layer, or the base
    weights are not float32."""
    from peft.tuners.lora import Linear

    layers = [m for m in model.modules() if isinstance(m, Linear)]
    if not layers:
        raise InputError("lora.quantization_aware: the model has no LoRA linear layer to quantize")
    for layer in layers:
        if layer.base_layer.weight.dtype != torch.float32:
            raise InputError(
                f"lora.quantization_aware needs float32 base weights (got {layer.base_layer.weight.dtype}); "
                "a bf16 weight is not on the GGUF grid"
            )
        layer._plain_forward = layer.forward
        layer.forward = types.MethodType(_forward(gguf_type), layer)
    return len(layers)
