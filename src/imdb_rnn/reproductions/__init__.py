"""Classic textbook recipes (presets) run as published, beside their published numbers."""
