"""Console benchmark: server time of every console page with a province of 900 mines."""
