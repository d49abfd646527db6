"""LoRA dropout for CPU training: the same inverted dropout as ``torch.nn.Dropout``, its mask drawn from a quarter
of the random numbers.

PEFT applies ``lora_dropout`` to the input of every LoRA layer (seven per decoder layer of a Llama with
``all-linear``: q, k, v, o, gate, up, down, each with its own mask). Torch's CPU dropout draws one 32-bit number
from the Mersenne twister per element, and that draw is most of its cost: on 2 cores it took 0.68 ms for a
``[220, 576]`` bf16 input, about a fifth of SmolLM2's LoRA forward in training (``benchmarks/run.py --only
methods`` measures the share).

:class:`QuarterWordDropout` draws one uniform 64-bit number per four elements and compares each 16-bit quarter with
a threshold: an element is dropped with probability ``round(p * 65536) / 65536`` (0.05 becomes 0.0500031), each
element independently, and kept elements are scaled by ``1 / (1 - that probability)`` so the expectation of the
output is the input, as in torch. 0.26 ms for the same input. It draws from torch's default generator, so
``set_seed`` makes it reproducible; the masks differ from torch's, as two torch seeds' masks differ.

On CUDA, torch's fused dropout kernel is already fast and stays.
"""

from __future__ import annotations

import torch

#: Off: training keeps torch's dropout (``benchmarks/run.py`` measures what this module buys)
FAST_DROPOUT = True
_LEVELS = 1 << 16  # one 16-bit quarter of a 64-bit random word per element


class QuarterWordDropout(torch.nn.Module):
    """Inverted dropout with drop probability ``p`` rounded to a multiple of 1/65536.

    Input and output: any shape and floating dtype; in ``eval()`` mode, or when ``p`` rounds to 0, the input is
    returned unchanged.

    Raises ValueError when ``p`` is not in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.dropped = round(p * _LEVELS)
        self.p = self.dropped / _LEVELS
        self.scale = 1.0 / (1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropped == 0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(1 << 63), None)
        # a signed quarter is uniform on [-32768, 32767]: dropped when among the lowest ``dropped`` values
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.dropped - _LEVELS // 2
        return torch.where(keep, x, 0).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def speed_up_lora_dropout(model: torch.nn.Module) -> int:
    """Replace every LoRA layer's ``torch.nn.Dropout`` (PEFT's ``lora_dropout`` modules with ``p > 0``) by a
    :class:`QuarterWordDropout` of the same ``p``; returns how many were replaced (0 when :data:`FAST_DROPOUT` is
    off). Call it on the CPU only, after ``get_peft_model``; dropout has no weights, so saved adapters are the same
    files."""
    if not FAST_DROPOUT:
        return 0
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout) and dropout.p > 0:
                dropouts[name] = QuarterWordDropout(dropout.p)
                replaced += 1
    return replaced
