"""rebind.adapters."""
