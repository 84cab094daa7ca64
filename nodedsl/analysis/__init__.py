"""Analysis of compiled models: statistical reachtubes (GoTube) and a Gronwall baseline (``verify``).

Example:
    >>> from nodedsl.analysis import verify, ReachTube
    >>> callable(verify), ReachTube.__name__
    (True, 'ReachTube')
"""

from .verify import ReachTube, VerifyRequest, verify

__all__ = ["ReachTube", "VerifyRequest", "verify"]
