"""stem subpackage."""
