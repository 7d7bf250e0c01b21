"""Evaluation of recipes over datasets: accuracy vs cost (``sfrun eval``, ``sfrun data make``)."""
