"""Asterisk Manager Interface: a sans-IO codec, an asyncio client and a replay server."""
