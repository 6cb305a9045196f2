#!/usr/bin/env python
"""Image similarity search that tells you which encoder suits your images.

    python app.py sample                       # build the sample meme set (offline)
    python app.py index --encoder efficientnet-lite0 clip
    python app.py search --image data/memes/doge/doge__v0.jpg --encoder efficientnet-lite0
    python app.py search --text "doge" --encoder clip
    python app.py stats

Run `python app.py COMMAND --help` for each command's options.
"""

from imgsearch.cli import exit_now, main

if __name__ == "__main__":
    exit_now(main())
