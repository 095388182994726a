"""Hardware: cameras, teleoperation devices and real-robot clients (see issues 5 and 6)."""
