"""``python -m skmeta`` runs the end-to-end demo (``--help`` for its options)."""

from ._demo import cli

if __name__ == "__main__":
    cli()
