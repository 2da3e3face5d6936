"""`python -m structkd_plugin ...` runs the `structkd` command line."""

from structkd_plugin.commands import main

if __name__ == "__main__":
    main()
