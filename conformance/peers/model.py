"""Names and paths of the tiny model, importable without the builder's dependencies.

`conformance.peers.tinymodel` builds the model (it needs numpy, gguf, safetensors, tokenizers);
the launchers only need to know where it is and whether it is built, which this module says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: Bump when anything that changes the output files changes; `build` rebuilds on a mismatch.
BUILDER_VERSION = "1"
#: The model name every peer serves (transformers serves the folder of the same name).
MODEL_NAME = "tiny"
CONTEXT_WINDOW = 256
GGUF_NAME = f"{MODEL_NAME}.gguf"
MANIFEST_NAME = "tinymodel.json"


@dataclass(frozen=True)
class TinyModel:
    """Where a built tiny model lives and how the peers must name it."""

    root: Path
    gguf: Path
    hf_dir: Path
    name: str = MODEL_NAME
    context_window: int = CONTEXT_WINDOW


def model_paths(out_dir: Path) -> TinyModel:
    """Return where the builder puts the model under ``out_dir`` (whether or not it exists)."""
    return TinyModel(root=out_dir, gguf=out_dir / GGUF_NAME, hf_dir=out_dir / MODEL_NAME)


def is_built(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a complete model from this builder version."""
    model = model_paths(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("builder_version") == BUILDER_VERSION
        and model.gguf.is_file()
        and (model.hf_dir / "model.safetensors").is_file()
    )
