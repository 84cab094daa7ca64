"""Export of trained models (``nodedsl export``): the vector field and a fixed-step rollout as ``torch.export``
(``.pt2``) and ONNX programs that run where nodedsl is not installed, and safetensors weights with a JSON
manifest, loaded back for inference without pickle. docs/export.md.

Example:
    >>> from nodedsl.export import FORMATS
    >>> FORMATS
    ('pt2', 'onnx', 'safetensors')
"""

from .run import FORMATS, export_run, load_exported

__all__ = ["FORMATS", "export_run", "load_exported"]
