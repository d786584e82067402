"""The simulator (issue 5): what the model costs the operator, before launch."""
