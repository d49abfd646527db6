"""A fully fine-tuned model beside the model it started from, seen through the interface of a LoRA-wrapped one.

With ``adapter: full`` every weight trains, and there is no adapter to switch off: the reference policy (NPO's
and DPO's ``pi_ref``, the KL retain term, UNDIAL's teacher, RMU's frozen activations, the fluency judge in scoring)
is a frozen copy of the starting weights instead. :class:`FullWeights` holds both and answers the two calls the
methods, the engine and the scorer make on a PEFT model: ``get_base_model()`` (the model whose decoder runs) and
``disable_adapter()`` (a block in which that is the reference). Everything else (``generate``, ``config``, ...)
is the fine-tuned model's own.

The fine-tuned weights are saved as a plain safetensors checkpoint (``config.json`` + ``model.safetensors``) where
an adapter would go; :func:`is_full_weights` tells the two folders apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def is_full_weights(folder: str | Path) -> bool:
    """Whether an unlearn output folder holds full weights (a checkpoint) rather than a LoRA adapter.

    Raises FileNotFoundError when it holds neither (``adapter_config.json`` or ``config.json``)."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        return False
    if (folder / "config.json").is_file():
        return True
    raise FileNotFoundError(
        f"{folder} holds neither a LoRA adapter (adapter_config.json) nor full weights (config.json): "
        "rerun its unlearn job"
    )


class FullWeights(torch.nn.Module):
    """``policy`` (trained or fine-tuned) with ``reference`` (its frozen starting weights) behind
    :meth:`disable_adapter`.

    Only ``policy`` is a submodule: ``parameters()`` and ``state_dict()`` never include the reference, so an
    optimizer never sees it. Calls and attributes the wrapper does not define go to the model that is active.
    """

    def __init__(self, policy: torch.nn.Module, reference: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy
        reference.requires_grad_(False)
        reference.eval()
        object.__setattr__(self, "_reference", reference)  # not a submodule: never trained, moved or saved with it
        object.__setattr__(self, "_reference_on", False)

    @classmethod
    def from_policy(cls, policy: torch.nn.Module) -> FullWeights:
        """Wrap a model that is about to be fine-tuned, with a frozen copy of its current weights as reference."""
        import copy

        return cls(policy, copy.deepcopy(policy))

    def get_base_model(self) -> torch.nn.Module:
        """The model that runs now: the reference inside :meth:`disable_adapter`, else the policy."""
        return self._reference if self._reference_on else self.policy

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the block on the reference weights (as PEFT's ``disable_adapter`` runs it on the base model)."""
        before = self._reference_on
        object.__setattr__(self, "_reference_on", True)
        try:
            yield
        finally:
            object.__setattr__(self, "_reference_on", before)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        return self.get_base_model()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "policy":
                raise
            return getattr(self.get_base_model(), name)

    def changed_weights(self) -> int:
        """How many of the policy's parameter tensors differ from the reference's (0: training changed nothing)."""
        reference = dict(self._reference.named_parameters())
        return sum(not torch.equal(p.detach(), reference[n].detach()) for n, p in self.policy.named_parameters())
