"""python -m migrate: the same command line as the migrate script."""

from migrate.cli.main import main

if __name__ == "__main__":
    main()
