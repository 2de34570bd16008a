"""watchkeeper: alerts."""
