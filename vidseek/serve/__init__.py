"""`vidseek serve`: a web page to see and play the moments a search finds, and an HTTP API for other
programs (``vidseek.serve.app.create_app``), over one library index held warm and kept up to date
while ``vidseek index`` runs (``vidseek.serve.live.LiveIndex``).

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'vidseek[serve]'``. Importing this
package imports neither; ``vidseek.serve.app`` does. It imports ``library`` (and ``engine`` for one
error class), never ``index``, ``trainer``, ``export``, ``cli``, ``bench`` or ``synth``.
"""
