"""Comparison of explanations with the human reference regions."""
