"""Accident records entered by regulators: the findings the accident count rules count."""
