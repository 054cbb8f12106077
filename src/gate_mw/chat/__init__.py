"""The chat contract: what a caller may send through `gate.chat`/`gate.stream`, checked at the gate."""
