"""Lambda handlers: one per Task state, each an adapter from the event to one ``pipeline`` call."""
