"""Mines: the list with current status, and one mine's registry summary, open cases and active order."""
