"""The form of an SDE's diffusion (pure data, shared by the compiler and the solvers).

Example:
    >>> Noise("diagonal").torchsde_type
    'diagonal'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Noise:
    """The diffusion's form: ``kind`` ``"diagonal"`` (``g`` is ``[batch, n]``) or ``"general"``
    (``[batch, n, channels]``); ``additive``: ``g`` does not depend on the state; ``sde_type``:
    how the model reads ``g dW`` (``"ito"`` or ``"stratonovich"``).

    Example:
        >>> Noise("general", channels=1).torchsde_type, Noise("general", 3, additive=True).torchsde_type
        ('scalar', 'additive')
    """

    kind: str = "diagonal"
    channels: int | None = None
    additive: bool = False
    sde_type: str = "ito"

    @property
    def torchsde_type(self) -> str:
        """torchsde's ``noise_type`` for this form."""
        if self.kind == "diagonal":
            return "diagonal"
        if self.additive:
            return "additive"
        return "scalar" if self.channels == 1 else "general"
