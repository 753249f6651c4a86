"""The subcommands, one module each, each with ``run(args) -> int``; `nas.cli` parses the
flags and calls them. Nothing here imports the command line."""
