"""Report stage (``workflow/rules/report.smk``): the figures of ``snakemake --report``.

:mod:`.plots` draws arrays it is given; :mod:`.figures` is the ``ferxai figures`` command.
"""
