"""The sfdsl language server (`sfrun lsp`): diagnostics, hover, completion, navigation and formatting over LSP.

One concept per module: ``documents`` analyses a text, ``positions`` converts spans, ``server`` wires the
features (``diagnostics``, ``hover``, ``completion``, ``navigation``, ``symbols``, ``actions``, ``hints``)
to pygls. Only ``server`` and ``command`` import pygls, so the analysis runs without the ``[lsp]`` extra.
"""
