"""structure subpackage."""
