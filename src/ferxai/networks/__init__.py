"""Networks: the registry, builders, loaders of models trained elsewhere and their cards."""
