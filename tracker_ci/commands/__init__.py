"""The `tracker-ci` subcommands, one module per noun; shared helpers in `common`."""
