"""Files: atomic writes (``atomic``), the one CSV reader with located errors (``tables``) and
weights-only checkpoints (``checkpoint``), shared by the data loaders, training, the API and the CLI.

The package imports nothing itself, so that reading a CSV does not load torch; import the module you
need (``from nodedsl.io.atomic import atomic_write``).
"""
