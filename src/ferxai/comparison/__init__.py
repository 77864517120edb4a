"""Comparison stage (``workflow/rules/comparison.smk``): the Ekman/FACS ground truth and how global
heatmaps agree with it (IoU, F1, precision, recall after a threshold; threshold-free metrics and
bootstrap intervals) and with each other (similarity, dendrograms, cluster support, group test).

Commands: ``groundtruth`` (:mod:`.groundtruth`), ``compare`` (:mod:`.compare`), ``tables``
(:mod:`.tables`), ``extended-metrics`` (:mod:`.extended_metrics`), ``cluster`` (:mod:`.cluster`).
"""
