"""A minimal device app, as an example to copy: the package's own app (edgecnn/app.py, also
`edgecnn app` and `python -m edgecnn.app`) run from the repository.

    python deploy/app.py exports/mobilenet-a0.5-r224 --images photos/
    python deploy/app.py exports/mobilenet-a0.5-r224 --camera 0            # needs OpenCV

Uses only edgecnn.runtime (numpy, Pillow and one runtime; no torch). The whole app is a
load() and a predict() per image:

    from edgecnn.runtime import load
    with load("exports/mobilenet-a0.5-r224") as model:
        print(model.predict("photo.jpg", topk=3)[0].labels)
"""

from edgecnn.app import main

if __name__ == "__main__":
    raise SystemExit(main())
