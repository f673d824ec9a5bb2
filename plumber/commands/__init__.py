"""Subcommands of the ``plumber`` command line."""
