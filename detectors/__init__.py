"""watchkeeper: detectors."""
