"""Configuration read from files: the bench file, quantities with units, source locations."""
