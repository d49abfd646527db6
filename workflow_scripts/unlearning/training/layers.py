"""The decoder blocks of a causal LM, found without importing transformers (a method module imports this when the
Snakefile resolves settings, where transformers' own import would cost seconds)."""

from __future__ import annotations

import torch

from ..core.errors import InputError


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder blocks of a causal LM, in order, for Llama-style (``model.layers``) and Gemma3 models alike
    (also under a PEFT wrapper): what a method that reads or steers one layer's activations (RMU) hooks into."""
    base = _unwrapped(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList):
        return layers
    config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    n = getattr(config, "num_hidden_layers", None)
    for _, module in base.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the decoder layers of {type(base).__name__} (num_hidden_layers={n})")


def num_layers(model: torch.nn.Module) -> int:
    """How many decoder blocks a model has."""
    return len(decoder_layers(model))


def layer_index(model: torch.nn.Module, layer: int) -> int:
    """A configured layer number as an index into :func:`decoder_layers`; negative counts from the last layer."""
    n = num_layers(model)
    if not -n <= layer < n:
        raise InputError(f"layer {layer} does not exist: the model has {n} decoder layers (0..{n - 1}, or -1..-{n})")
    return layer % n
