"""watchkeeper: streams."""
