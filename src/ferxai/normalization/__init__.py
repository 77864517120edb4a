"""Normalization stage (``workflow/rules/normalization.smk``): 68 landmarks per face and the
piecewise-affine warp of every map onto the canonical 224 × 275 face.

Commands: ``landmarks`` (:mod:`.landmarks`), ``normalize`` (:mod:`.normalize`), ``landmarks-qa``
(:mod:`.landmarks_qa`), ``make-template`` (:mod:`.make_template`).
"""
