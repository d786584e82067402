"""Programs the tests run as separate processes."""
