"""Launch the qa web UI: ``python ui/app.py [--index index] [--corpus corpus] [--host H] [--port P]``.

Also works with Gradio's reload mode (``gradio ui/app.py``): the index and model load once, under
``gr.NO_RELOAD``, and the Blocks are rebuilt on every change. ``QA_INDEX``, ``QA_HOST`` and ``QA_PORT``
give the defaults, as for ``qa serve``. The stylesheet is packaged with qa
(``qa/assets/style.css``) and applied by ``qa.web.launch``. Set ``QA_AUTH=user:password`` to require a login.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gradio as gr

from qa.settings import DEFAULT_INDEX
from qa.web import build_app, launch, ready_assistant


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


if gr.NO_RELOAD:
    parser = argparse.ArgumentParser(description="qa web UI")
    parser.add_argument("--index", default=os.environ.get("QA_INDEX", DEFAULT_INDEX))
    parser.add_argument("--corpus", default=None, help="folder to index when there is no index yet")
    parser.add_argument("--host", default=os.environ.get("QA_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=port_number, default=os.environ.get("QA_PORT") or None)
    args, unknown = parser.parse_known_args()  # Gradio's reload mode may pass its own
    if unknown and __name__ == "__main__":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    assistant = ready_assistant(
        Path(args.index), Path(args.corpus) if args.corpus else None, say=lambda m: print(m, file=sys.stderr)
    )

demo = build_app(assistant)

if __name__ == "__main__":
    user, _, password = os.environ.get("QA_AUTH", "").partition(":")
    launch(demo, host=args.host, port=args.port, auth=(user, password) if password else None)
