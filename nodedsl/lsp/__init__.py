"""The language server (``nodedsl lsp``): diagnostics, hover, navigation, completion, rename, formatting."""
