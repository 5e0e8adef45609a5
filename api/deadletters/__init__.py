"""Dead letters: input that could not be accepted, kept whole with the reason."""
