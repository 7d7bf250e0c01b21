"""The sfdsl runtime: async plan execution over pluggable model backends."""
