"""Server-side state: Responses API conversations (previous_response_id)."""
