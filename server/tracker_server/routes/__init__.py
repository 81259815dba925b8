"""One router per noun: events, locks, tokens, and the operational endpoints."""
