"""Sanity stage (``workflow/rules/sanity.smk``): the model-randomization check (Adebayo et al.
2018) of the explanations.

:mod:`.randomization` holds the tests, :mod:`.check` the ``ferxai sanity`` command.
"""
