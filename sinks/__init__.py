"""watchkeeper: sinks."""
