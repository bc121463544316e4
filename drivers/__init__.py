"""Device drivers: one device per module, talking only to a transport passed in."""
