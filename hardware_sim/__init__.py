"""The hardware simulator: wire-faithful device emulators, chip physics, synthetic camera."""
