"""Integrations with agent tools: what each needs to reach memento on its own."""
