"""watchkeeper: dashboards."""
