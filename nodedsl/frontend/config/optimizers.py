"""The ``optimizer`` values of a ``train`` block (``nodedsl.train.setup.make_optimizer`` builds them).

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(OptimizerValue).validate_python({"kind": "gauss_newton", "damping": 0.01})
    GaussNewtonOpt(kind='gauss_newton', damping=0.01, lr=1.0, max_params=500)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from .base import NonNegFloat, PosFloat, PosInt, _tag_errors, kind_of


class _Strict(BaseModel):  # as in schema.py (which imports this module)
    model_config = ConfigDict(extra="forbid", strict=True)


class Adam(_Strict):
    kind: Literal["adam"]
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0


class AdamW(_Strict):
    kind: Literal["adamw"]
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 1e-2


class LBFGS(_Strict):
    kind: Literal["lbfgs"]
    lr: PosFloat = 1.0
    max_iter: PosInt = 20
    history_size: PosInt = 100


class GaussNewtonOpt(_Strict):
    """Levenberg-Marquardt on the residuals (nodedsl/train/second_order.py)."""

    kind: Literal["gauss_newton"]
    damping: PosFloat = 1e-3
    lr: PosFloat = 1.0
    max_params: PosInt = 500


class KFACOpt(_Strict):
    """Kronecker-factored preconditioning of the nets' linear layers (nodedsl/train/second_order.py)."""

    kind: Literal["kfac"]
    lr: PosFloat = 0.05
    damping: PosFloat = 1e-3
    decay: Annotated[float, Field(gt=0, lt=1)] = 0.95
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    update_every: PosInt = 10
    other_lr: PosFloat = 1e-2
    kl_clip: PosFloat = 1e-2


OptimizerValue = Annotated[
    Annotated[Adam, Tag("adam")]
    | Annotated[AdamW, Tag("adamw")]
    | Annotated[LBFGS, Tag("lbfgs")]
    | Annotated[GaussNewtonOpt, Tag("gauss_newton")]
    | Annotated[KFACOpt, Tag("kfac")],
    Discriminator(
        kind_of,
        **_tag_errors(
            "adam(lr, weight_decay), adamw(lr, weight_decay), lbfgs(lr, max_iter), gauss_newton(damping), "
            "kfac(lr, damping)"
        ),
    ),
]
