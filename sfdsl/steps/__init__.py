"""The step kinds of the .sf language, one module each; sfdsl/registry.py collects every module here."""
