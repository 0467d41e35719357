"""``python -m skmeta`` runs the end-to-end demo on the bundled Adult data."""

from ._demo import main

if __name__ == "__main__":
    main()
