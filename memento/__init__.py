"""memento: persistent, local-first memory for AI coding agents.

>>> from memento import Memory
>>> with Memory(path="/tmp/demo.db") as m:
...     m.store("I prefer dark mode in editors", subject_key="user.theme")
...     m.recall("what theme does the user like")[0].content

Importing memento is cheap: onnxruntime and the model load on the first embedding.
"""

from .errors import (
    AccessError,
    AmbiguousIdError,
    DatabaseError,
    InvalidInputError,
    MementoError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    SchemaError,
)
from .memory import Memory
from .records import KINDS, MemoryRecord

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AccessError",
    "AmbiguousIdError",
    "DatabaseError",
    "InvalidInputError",
    "MementoError",
    "Memory",
    "MemoryRecord",
    "ModelError",
    "ModelMismatchError",
    "NotFoundError",
    "SchemaError",
    "__version__",
]
