"""OpenAI's conversations as sessions, no HTTP: a conversation's items onto a session's
messages and back (`items.py`), and the conversation operations on the session store
(`service.py`)."""
