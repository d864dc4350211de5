"""``python -m cloud_tasks`` runs the CLI."""

from cloud_tasks.entrypoints.cli.main import main

if __name__ == "__main__":
    main()
