"""Subcommands of the `emotive` CLI: each module has add_arguments(parser) and run(args)."""
