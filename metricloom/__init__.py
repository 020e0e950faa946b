"""metricloom package."""
