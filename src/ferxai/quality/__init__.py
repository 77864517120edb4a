"""Explanation quality: faithfulness, randomisation and the trust table (issue 23)."""
