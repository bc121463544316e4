"""The bench's devices as the engine uses them: capability interfaces, adapters over the
drivers, the driver registry and the rig that builds, connects and stops them."""
