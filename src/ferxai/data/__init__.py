"""Data layer: image loading, the synthetic FACS face set, dataset validation and folds."""
