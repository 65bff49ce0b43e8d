"""Router backends: who decides which route a conversation takes."""
