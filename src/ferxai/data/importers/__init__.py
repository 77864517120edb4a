"""Readers of the common FER datasets in the layouts their authors distribute (``FORMATS``).

One module per format; each defines ``IMPORTER`` (:class:`~ferxai.data.importers.common.Importer`).
``ferxai import-dataset`` (:mod:`ferxai.data.import_dataset`) turns any of them into a manifest.
"""

from __future__ import annotations

from ferxai.data.importers import affectnet, ckplus, fer2013, jaffe, kdef, rafdb
from ferxai.data.importers.common import Importer, Item, Skip

FORMATS: dict[str, Importer] = {
    module.IMPORTER.name: module.IMPORTER
    for module in (fer2013, ckplus, kdef, jaffe, rafdb, affectnet)
}

__all__ = ["FORMATS", "Importer", "Item", "Skip"]
