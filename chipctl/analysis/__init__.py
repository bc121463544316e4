"""What a recorded run means: counts and densities, capture, concentration, imagery, report."""
