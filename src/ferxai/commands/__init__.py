"""The commands of the comparison stages: argument parsing, find → compute → write → plot.

Each module holds one ``ferxai`` subcommand as ``cli_<name>_args(parser)`` (its flags, and which of
them name inputs and outputs, for provenance) and ``cli_<name>(args)``. The computations they call
live below them (:mod:`ferxai.pooling`, :mod:`ferxai.localisation`, :mod:`ferxai.similarity`,
:mod:`ferxai.randomization`, :mod:`ferxai.figures`, :mod:`ferxai.tables`) and never import them.
"""
