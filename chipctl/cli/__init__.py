"""The command line: entry point, exit codes and usage errors, terminal progress, commands."""
