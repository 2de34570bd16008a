"""watchkeeper: streams/agents."""
