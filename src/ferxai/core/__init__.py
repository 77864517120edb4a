"""The base every stage builds on: atomic files and HDF5 stacks (:mod:`.io`), user-facing errors
(:mod:`.errors`), the study's names (:mod:`.constants`), the workflow configuration (:mod:`.config`),
provenance records (:mod:`.provenance`) and code versions (:mod:`.code_version`), devices and
threads (:mod:`.device`), command-line argument helpers (:mod:`.arguments`), drawing primitives
(:mod:`.plots`) and the SLURM profile installer (:mod:`.profiles`).

Modules here import no stage package, with one exception that sits above every stage: the
configuration's validation (:mod:`.config`) asks the stages which networks and dataset formats exist.
"""
