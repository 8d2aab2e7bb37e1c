"""Report stage: human-readable views of a results file."""
