"""Identifier harmonization, offline first: compounds, cell contexts, genes.

Reference tables come from a local reference store (:mod:`perturbridge.ids.store`) built
from upstream public files; nothing here touches the network unless a user turns the
optional online resolver on.
"""
