"""rebind.demos."""
