"""Who is underground now in a mine, and head counts by area against their approved limits."""
