"""The front end: source text to a checked program, with every diagnostic collected and located.

``parse`` (text to ``ast.Module``), ``loader`` (imports, stdlib, cycles: a ``Source``), ``check``
(names, sizes, structure: a ``CheckedProgram``), ``config`` (dataset and train blocks). No torch, no
SymPy, no matplotlib are imported here (tests/test_layers.py and tests/test_torch_free.py check it).

Example:
    >>> from nodedsl.frontend import check_source, source_from_text
    >>> checked, diags = check_source(source_from_text("model M { state x = 1\\n der(x) = -x }"))
    >>> checked.model("M").model.name, diags
    ('M', [])
"""

from .check import check_source
from .loader import Source, load_sources, source_from_text
from .model_info import CheckedProgram, ModelInfo
from .parse import parse_source

__all__ = ["CheckedProgram", "ModelInfo", "Source", "check_source", "load_sources", "parse_source", "source_from_text"]
