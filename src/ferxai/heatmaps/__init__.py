"""Heatmaps stage (``workflow/rules/heatmaps.smk``): normalized maps pooled into global heatmaps.

:mod:`.heatmap` is the one heatmap type and its files, :mod:`.pooling` the pooling of stacks, and
:mod:`.aggregate` the ``ferxai aggregate`` command.
"""
