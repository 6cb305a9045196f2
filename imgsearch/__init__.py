"""Image-similarity search: shared helpers and sample data tools."""
