"""The compiler stage: a SymPy :class:`~nodedsl.symbolic.lower.System` to a torch.fx vector field
(``graph``: ``emit`` the SymPy dispatch, ``blocks``/``views``/``affine`` the layout), the declared op
vocabulary of the graphs (``ops``), Taylor-mode AD over them (``jet``, ``jetrules``) and the
``nn.Module`` that carries parameters and nets (``module.CompiledModel``).

Example:
    >>> import nodedsl
    >>> type(nodedsl.loads("model M { state x = 1\\n der(x) = -x }").model("M")).__name__
    'CompiledModel'
"""

from .module import CompiledModel

__all__ = ["CompiledModel"]
