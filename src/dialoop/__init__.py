"""dialoop: local-first LLM assistants that converse, ground and learn.

The public API is what ``__all__`` lists; everything else may change.
"""

from dialoop.assistant import Assistant, Reply, ReplyStream, open_assistant
from dialoop.config import Settings, load_settings
from dialoop.engine import Chunk, Engine, GenerationParams, Message, Usage, open_engine
from dialoop.errors import DialoopError

__all__ = [
    "Assistant",
    "Chunk",
    "DialoopError",
    "Engine",
    "GenerationParams",
    "Message",
    "Reply",
    "ReplyStream",
    "Settings",
    "Usage",
    "load_settings",
    "open_assistant",
    "open_engine",
]

__version__ = "0.1.0"
