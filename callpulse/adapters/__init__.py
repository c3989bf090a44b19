"""PBX and contact-centre sources to contract events.

Each adapter is a pure mapper from one source input (an Asterisk ``queue_log`` line, a Twilio
TaskRouter callback, an Amazon Connect contact record, a payload under a generic field mapping)
to contract events, plus the transport that feeds it (a file follower, stdin, HTTP webhooks).
Every input maps whole or is refused whole (``core``); event ids come from the source, so
reading the same input again never counts twice. docs/ADAPTERS.md has one example per adapter.
"""
