"""Figures drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot state, no backend
switch): training curves and fits (``training``), energy balance of a simulation (``energy``).

The package imports nothing itself; import the module you need.
"""
